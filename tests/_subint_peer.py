"""Runs inside a subinterpreter: answer msgspec requests over a socket."""
from __future__ import annotations

import _interpreters
import os
import struct

import msgspec
import trio

_LEN = struct.Struct('>I')


class Add(msgspec.Struct, tag=True):
    x: int
    y: int


class Stop(msgspec.Struct, tag=True):
    pass


class Sum(msgspec.Struct, tag=True):
    total: int
    interp_id: int
    pid: int


Message = Add | Stop | Sum
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


async def send_frame(stream: trio.abc.SendStream, msg: Message) -> None:
    payload = _encoder.encode(msg)
    await stream.send_all(_LEN.pack(len(payload)) + payload)


async def _receive_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    data = b''
    while len(data) < n:
        chunk = await stream.receive_some(n - len(data))
        if not chunk:
            raise EOFError(f'peer closed after {len(data)} of {n} bytes')
        data += chunk
    return data


async def receive_frame(stream: trio.abc.ReceiveStream) -> Message:
    (size,) = _LEN.unpack(await _receive_exactly(stream, _LEN.size))
    return _decoder.decode(await _receive_exactly(stream, size))


async def serve(sock_path: str) -> None:
    me = int(_interpreters.get_current()[0])
    stream = await trio.open_unix_socket(sock_path)
    async with stream:
        while not isinstance(msg := await receive_frame(stream), Stop):
            assert isinstance(msg, Add), msg
            await send_frame(stream, Sum(msg.x + msg.y, me, os.getpid()))
