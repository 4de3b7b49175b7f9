"""Frames, codec and channel: what crosses the wire between actors."""
from __future__ import annotations

import socket

import pytest
import trio

from tractor_subint.runtime._bootspec import BootSpec
from tractor_subint.runtime._channel import MAX_FRAME, Channel, ProtocolError
from tractor_subint.runtime._codec import (
    MarshalCodec,
    MsgpackCodec,
    UndecodableValue,
    get_codec,
    marshal_reply_header,
    msgpack_reply_header,
)
from tractor_subint.runtime._msgs import (
    RETURN_TAG,
    BootFailed,
    Call,
    CancelAck,
    CancelActor,
    CancelCall,
    Credit,
    ErrorInfo,
    Failed,
    OpenContext,
    Ready,
    Return,
    Started,
    StreamEnd,
    Yield,
    from_wire,
)
from tractor_subint.testing import trio_parent_test


def _channel_and_raw_peer() -> tuple[Channel, socket.socket]:
    ours, peer = socket.socketpair()
    return Channel.from_socket(ours, MsgpackCodec()), peer


@trio_parent_test(timeout=10)
async def test_messages_round_trip_in_order_across_split_reads():
    a, b = socket.socketpair()
    left, right = Channel.from_socket(a, MsgpackCodec()), Channel.from_socket(b, MsgpackCodec())
    sent = [Call(i, 'mod', 'fn', {'x': i, 'blob': b'\0' * (i * 1000)}) for i in range(50)]
    async with trio.open_nursery() as nursery:
        async def send_all() -> None:
            for msg in sent:
                await left.send(msg)
            await left.aclose()
        nursery.start_soon(send_all)
        received = [msg async for msg in right]
    assert received == sent
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_eof_inside_a_frame_is_a_broken_channel():
    right, raw = _channel_and_raw_peer()
    raw.sendall(b'\0\0\0\x10abc')  # announces 16 bytes, sends 3
    raw.close()
    with pytest.raises(trio.BrokenResourceError, match='inside a frame'):
        await right.recv()
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_oversized_frame_is_refused_before_reading_it():
    right, raw = _channel_and_raw_peer()
    raw.sendall((MAX_FRAME + 1).to_bytes(4, 'big'))
    with pytest.raises(ProtocolError, match='exceeds'):
        await right.recv()
    raw.close()
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_a_frame_that_does_not_decode_is_a_protocol_error():
    right, raw = _channel_and_raw_peer()
    raw.sendall((1).to_bytes(4, 'big') + b'\xc1')
    with pytest.raises(ProtocolError, match='does not decode'):
        await right.recv()
    raw.close()
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_a_reply_whose_value_does_not_decode_leaves_the_channel_in_step():
    right, raw = _channel_and_raw_peer()
    deep = bytes([0x93, RETURN_TAG, 7]) + b'\x91' * 100_000 + b'\x90'
    ok = MsgpackCodec().encode(Return(8, 'fine'))
    for body in (deep, ok):
        raw.sendall(len(body).to_bytes(4, 'big') + body)
    with pytest.raises(UndecodableValue) as info:
        await right.recv()
    assert (info.value.cid, info.value.kind) == (7, 'Return')
    assert isinstance(info.value.cause, RecursionError)
    assert await right.recv() == Return(8, 'fine')
    raw.close()
    await right.aclose()


def test_unserialisable_value_is_a_clear_type_error():
    with pytest.raises(TypeError, match='msgpack-serialisable'):
        MsgpackCodec().encode(Return(1, object()))


def test_codec_registry_and_boot_spec():
    assert get_codec('msgpack').decode(get_codec().encode(CancelActor())) == CancelActor()
    with pytest.raises(ValueError, match="unknown codec 'pickle'"):
        get_codec('pickle')
    spec = BootSpec('a', ('a', 'f' * 32), ['m'], 'trio', ['/x'])
    assert BootSpec.from_bytes(spec.to_bytes()) == spec


@pytest.mark.parametrize('cid', [1, 7, 8, 127, 128, 300, 70_000, 2**31 - 1])
@pytest.mark.parametrize('kind', [Return, Yield])
@pytest.mark.parametrize(
    ('codec', 'header'),
    [(MsgpackCodec(), msgpack_reply_header), (MarshalCodec(), marshal_reply_header)],
    ids=['msgpack', 'marshal'],
)
def test_a_reply_s_call_id_is_read_without_decoding_its_value(codec, header, kind, cid):
    assert header(codec.encode(kind(cid, [[[1]]]))) == (kind.__name__, cid)


@pytest.mark.parametrize(
    ('codec', 'header'),
    [(MsgpackCodec(), msgpack_reply_header), (MarshalCodec(), marshal_reply_header)],
    ids=['msgpack', 'marshal'],
)
def test_anything_but_a_reply_has_no_reply_header(codec, header):
    for data in (b'', b'\xc1', b'[', codec.encode(CancelActor()), codec.encode(StreamEnd(3))):
        assert header(data) is None


_EVERY_MESSAGE = [
    Ready(('a', 'f' * 32), 123),
    BootFailed(ErrorInfo('E', 'm', 'tb', ('a', '1'), 'S', ('b', '2'))),
    Call(1, 'mod', 'fn', {'x': [1, 2.5, 'y', None, b'\x00'], 'd': {'k': True}}, True, 64),
    Credit(1, 32),
    CancelCall(4),
    CancelActor(),
    CancelAck(),
    Return(2, {'value': [1, 2, 3]}),
    Yield(3, 'item'),
    StreamEnd(3),
    Failed(5, ErrorInfo('E', 'm', 'tb', ('a', '1'), 'S', ('b', '2'))),
    Failed(6, ErrorInfo(
        'm.E', 'm', 'tb', ('a', '1'), 'S', ('b', '2'), ('m', 1), {'k': [1]}, ('c', '3'),
    )),
    OpenContext(7, 'mod', 'fn', {'x': 1}, ('root', 'f' * 32), 64),
    Started(7, {'first': [1, 2]}),
]


@pytest.mark.parametrize('codec', ['msgpack', 'marshal'])
@pytest.mark.parametrize('msg', _EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_survives_every_codec(codec, msg):
    assert get_codec(codec).decode(get_codec(codec).encode(msg)) == msg


@pytest.mark.parametrize('codec', ['msgpack', 'marshal'])
def test_what_a_codec_cannot_carry_is_a_clear_type_error(codec):
    with pytest.raises(TypeError, match=f'with the {codec} codec'):
        get_codec(codec).encode(Return(1, object()))


@pytest.mark.parametrize('wire', [[], [99], [True], ['Return', 1, 2], [7, 1], [0, ['a'], 1]])
def test_a_wire_list_that_is_no_message_is_refused(wire):
    with pytest.raises((TypeError, ValueError)):
        from_wire(wire)


def test_a_marshal_reply_too_deep_to_load_names_its_call():
    deep = (
        b'[\x03\x00\x00\x00' + b'i' + RETURN_TAG.to_bytes(4, 'little') + b'i' + (9).to_bytes(4, 'little')
        + b'[\x01\x00\x00\x00' * 100_000 + b'[\x00\x00\x00\x00'
    )
    with pytest.raises(UndecodableValue) as info:
        MarshalCodec().decode(deep)
    assert (info.value.cid, info.value.kind) == (9, 'Return')
