"""A bidirectional message channel: length-prefixed frames over a trio stream.

Each frame is a 4-byte big-endian length followed by that many bytes of one
encoded message. A clean end of stream between frames ends the channel
(:class:`trio.EndOfChannel`); an end inside a frame is a broken channel.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

import trio

from .._exceptions import PUBLIC_MODULE, ProtocolError, TractorSubintError
from ._bootspec import Aid, Uid
from ._codec import Codec, UndecodableValue
from ._msgs import Msg

_HEADER = struct.Struct('>I')

MAX_FRAME = 64 * 1024 * 1024
"""The default frame limit (64 MiB): one message, encoded, may be at most
this long. A larger one is refused where it is sent (:class:`FrameTooLarge`)
and, if it came anyway, where it arrives (a corrupt length must not allocate
GBs). A nursery raises or lowers it for its children's channels:
``open_nursery(max_frame=...)``."""

FRAME_LIMIT_CEILING = 2**32 - 1
"""The largest frame the 4-byte length header can describe."""


class FrameTooLarge(TractorSubintError, ValueError):
    """A message that encodes to more bytes than its channel's frame limit.
    Nothing was sent: the channel is fine, and the actor too."""

    __module__ = PUBLIC_MODULE


def check_max_frame(max_frame: object) -> int:
    """``max_frame`` checked: a whole number of bytes the header can carry."""
    if not isinstance(max_frame, int) or isinstance(max_frame, bool) or not (
        1 <= max_frame <= FRAME_LIMIT_CEILING
    ):
        raise ValueError(
            f'max_frame must be an int from 1 to {FRAME_LIMIT_CEILING} (bytes), not {max_frame!r}'
        )
    return max_frame


def _mib(n: int) -> str:
    return f'{n / (1024 * 1024):.4g} MiB'


class Channel:
    """Send and receive :data:`Msg` values over a connected byte stream."""

    def __init__(self, stream: trio.abc.Stream, codec: Codec, *, max_frame: int = MAX_FRAME) -> None:
        self._stream = stream
        self._codec = codec
        self.max_frame = check_max_frame(max_frame)
        """The largest encoded message this channel sends or accepts, in bytes."""
        self._buffer = bytearray()
        self._send_lock = trio.Lock()
        self._eof = False
        self.aid: Aid | None = None
        """The identity of the actor at the other end, once known."""

    def __repr__(self) -> str:
        peer = f'{self.aid.name}[{self.aid.uuid[:8]}] pid={self.aid.pid}' if self.aid else '?'
        return f'<Channel to {peer} ({self._codec.name})>'

    @property
    def raddr(self) -> Any:
        """Where the actor at the other end listens (a ``UDSAddress``), once
        it is known who is there."""
        from ._discovery import UDSAddress

        return None if self.aid is None else UDSAddress.of(self.aid.uid, self.aid.pid)

    def use_codec(self, codec: Codec) -> None:
        """Speak ``codec`` from now on (after a handshake in another)."""
        self._codec = codec

    @property
    def uid(self) -> Uid | None:
        """The other end's ``(name, uuid)`` (tractor's older spelling of
        ``aid.uid``)."""
        return None if self.aid is None else self.aid.uid

    @classmethod
    def from_socket(cls, sock: socket.socket, codec: Codec, *, max_frame: int = MAX_FRAME) -> Channel:
        """Wrap a connected stdlib socket; the channel owns it from now on."""
        return cls(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), codec, max_frame=max_frame)

    def fileno(self) -> int:
        """The fd of the socket under this channel (-1 once it is closed)."""
        stream = self._stream
        return stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1

    async def send(self, msg: Msg) -> None:
        data = self._codec.encode(msg)
        if len(data) > self.max_frame:
            raise FrameTooLarge(
                f'a {type(msg).__name__} of {len(data)} bytes ({_mib(len(data))}) exceeds the '
                f'frame limit of {self.max_frame} bytes ({_mib(self.max_frame)}): nothing was '
                f'sent; raise the limit for a nursery\'s actors with open_nursery(max_frame=...), '
                f'or send less at once'
            )
        async with self._send_lock:
            await self._stream.send_all(_HEADER.pack(len(data)) + data)

    async def recv(self) -> Msg:
        """The next message; :class:`trio.EndOfChannel` once the peer is gone."""
        header = await self._read_exactly(_HEADER.size, first=True)
        (length,) = _HEADER.unpack(header)
        if length > self.max_frame:
            raise ProtocolError(
                f'incoming frame of {length} bytes exceeds the {self.max_frame}-byte limit'
            )
        body = await self._read_exactly(length, first=False)
        try:
            return self._codec.decode(body)
        except UndecodableValue:
            raise  # one call's problem: the stream is still in step
        except Exception as exc:  # the codec's own errors, RecursionError, ...
            raise ProtocolError(
                f'a {length}-byte frame does not decode: {type(exc).__name__}: {exc} '
                f'(starts {body[:16]!r})'
            ) from exc

    async def _read_exactly(self, n: int, *, first: bool) -> bytes:
        while len(self._buffer) < n:
            chunk = b'' if self._eof else await self._receive_some()
            if not chunk:
                self._eof = True
                if first and not self._buffer:
                    raise trio.EndOfChannel
                raise trio.BrokenResourceError('peer closed the channel inside a frame')
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def _receive_some(self) -> bytes | bytearray:
        try:
            return await self._stream.receive_some(65536)
        except (trio.BrokenResourceError, ConnectionResetError):
            return b''  # a reset peer is a gone peer

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> Msg:
        try:
            return await self.recv()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        except OSError:
            pass  # the fd was closed under us (user code): nothing left to close
