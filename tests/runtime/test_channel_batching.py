"""The channel's batching: frames read many at a time and split anywhere,
posted frames written together, in order, whole, and never without bound."""
from __future__ import annotations

import socket
import struct

import pytest
import trio
import trio.testing

from tractor_subint.runtime import _channel
from tractor_subint.runtime._channel import POST_HIGH_WATER, Channel
from tractor_subint.runtime._codec import get_codec
from tractor_subint.runtime._msgs import Call, Credit, Msg, Return, StreamEnd, Yield
from tractor_subint.testing import trio_parent_test

CODECS = ['msgpack', 'marshal']


def _frame(codec: str, msg: Msg) -> bytes:
    body = get_codec(codec).encode(msg)
    return struct.pack('>I', len(body)) + body


def _pair(codec: str) -> tuple[Channel, Channel]:
    a, b = socket.socketpair()
    return Channel.from_socket(a, get_codec(codec)), Channel.from_socket(b, get_codec(codec))


def _raw_frames(data: bytes, codec: str) -> list[Msg]:
    """The messages in ``data``, which must be whole frames."""
    decoder, msgs, at = get_codec(codec), [], 0
    while at < len(data):
        (length,) = struct.unpack_from('>I', data, at)
        body = data[at + 4:at + 4 + length]
        assert len(body) == length, 'a frame was cut short'
        msgs.append(decoder.decode(body))
        at += 4 + length
    return msgs


def _recv_all(sock: socket.socket) -> bytes:
    """Everything the socket holds now (non-blocking)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return b''.join(chunks)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


async def _read_frames(peer: socket.socket, n: int) -> list[Msg]:
    """Read ``peer`` until ``n`` whole (msgpack) frames have arrived."""
    data = b''
    while True:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(peer)
        data += _recv_all(peer)
        try:
            msgs = _raw_frames(data, 'msgpack')
        except AssertionError:
            continue  # a frame is still cut short: more is coming
        if len(msgs) == n:
            return msgs


# -- reading: frames split anywhere -----------------------------------------------------

@pytest.mark.parametrize('codec', CODECS)
@trio_parent_test(timeout=10)
async def test_a_frame_split_at_a_buffer_edge_arrives_whole_and_in_order(codec):
    """Bytes that stop inside a header, right after it, inside a body, and
    one frame and a bit: the reader takes exactly the complete frames each
    time, and waits for the rest of a partial one."""
    ours, peer = socket.socketpair()
    chan = Channel.from_socket(ours, get_codec(codec))
    sent = [Return(1, 'x' * 10), Yield(2, list(range(20))), StreamEnd(2), Credit(3, 64)]
    stream = b''.join(_frame(codec, msg) for msg in sent)
    first = len(_frame(codec, sent[0]))
    cuts = [1, 4, 7, first - 1, first + 2, first + 5, len(stream) - 3, len(stream)]
    received: list[Msg] = []

    async def read() -> None:
        async for msg in chan:
            received.append(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        at = 0
        for cut in cuts:
            peer.sendall(stream[at:cut])
            at = cut
            await trio.testing.wait_all_tasks_blocked()
            complete = [msg for msg, end in zip(sent, _frame_ends(codec, sent)) if end <= cut]
            assert received == complete
        peer.close()
    assert received == sent
    await chan.aclose()


def _frame_ends(codec: str, msgs: list[Msg]) -> list[int]:
    ends, at = [], 0
    for msg in msgs:
        at += len(_frame(codec, msg))
        ends.append(at)
    return ends


@pytest.mark.parametrize('codec', CODECS)
@trio_parent_test(timeout=10)
async def test_a_frame_larger_than_one_read_and_many_small_ones_after_it(codec):
    left, right = _pair(codec)
    big = Return(1, b'\x01' * (3 * 65536 + 17))
    small = [Yield(1, i) for i in range(500)]
    async with trio.open_nursery() as nursery:
        async def send() -> None:
            await left.send(big)
            for msg in small:
                await left.post(msg)
            await left.send(StreamEnd(1))
        nursery.start_soon(send)
        received = [await right.recv() for _ in range(len(small) + 2)]
    assert received == [big, *small, StreamEnd(1)]
    await left.aclose()
    await right.aclose()


# -- writing: posted frames go together, in order, whole ------------------------------

@pytest.mark.parametrize('codec', CODECS)
@trio_parent_test(timeout=10)
async def test_posted_and_sent_frames_keep_the_order_of_the_calls(codec):
    left, right = _pair(codec)
    order: list[Msg] = []

    async def producer(cid: int) -> None:
        for i in range(300):
            msg: Msg = Yield(cid, i) if i % 7 else Return(cid, i)
            order.append(msg)  # no await between this and the enqueue below
            await (left.send(msg) if i % 7 == 0 else left.post(msg))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer, 1)
        nursery.start_soon(producer, 2)
        received = [await right.recv() for _ in range(600)]
    assert received == order
    for cid in (1, 2):  # and each producer's own messages in its order
        assert [m.value for m in received if m.cid == cid] == list(range(300))  # type: ignore[union-attr]
    await left.aclose()
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_a_posted_frame_goes_out_without_another_send():
    left, right = _pair('msgpack')
    await left.post(Yield(1, 'alone'))
    assert await right.recv() == Yield(1, 'alone')  # the writer task sent it
    await left.aclose()
    await right.aclose()


@trio_parent_test(timeout=10)
async def test_frames_posted_in_one_go_cost_one_write(monkeypatch):
    left, right = _pair('msgpack')
    writes: list[int] = []
    send_some = left._send_some

    def counting(data: bytes | bytearray | memoryview) -> int:
        sent = send_some(data)
        writes.append(sent)
        return sent

    monkeypatch.setattr(left, '_send_some', counting)
    n = _channel.POST_YIELD_EVERY - 1  # no schedule point among them
    for i in range(n):
        await left.post(Yield(1, i))
    assert writes == []  # queued, not written yet
    received = [await right.recv() for _ in range(n)]
    assert received == [Yield(1, i) for i in range(n)]
    assert len(writes) == 1, writes
    await left.aclose()
    await right.aclose()


@trio_parent_test(timeout=20)
async def test_a_poster_faster_than_its_reader_waits_at_the_high_water_mark():
    """The peer reads nothing: posting goes on until the socket is full and
    ``POST_HIGH_WATER`` bytes wait, and then waits; once the peer reads,
    everything arrives, whole and in order."""
    ours, peer = socket.socketpair()
    chan = Channel.from_socket(ours, get_codec('msgpack'))
    payload = 'y' * 1000
    posted = 0
    async with trio.open_nursery() as nursery:
        async def produce() -> None:
            nonlocal posted
            while True:
                await chan.post(Yield(1, (posted, payload)))
                posted += 1

        nursery.start_soon(produce)
        await trio.testing.wait_all_tasks_blocked()
        queued = len(chan._out)
        assert POST_HIGH_WATER < queued <= POST_HIGH_WATER + 1100  # it stopped there
        stuck_at = posted
        await trio.testing.wait_all_tasks_blocked()
        assert posted == stuck_at
        data = b''
        while len(data) < 3 * POST_HIGH_WATER:  # reading lets it go on
            with trio.fail_after(5):
                await trio.lowlevel.wait_readable(peer)
            data += _recv_all(peer)
        nursery.cancel_scope.cancel()
    await chan.aclose()
    data += _recv_all(peer)
    peer.close()
    # Every frame is whole (even those queued when the poster was cancelled)
    # and in order.
    msgs = _raw_frames(data, 'msgpack')
    assert [m.value[0] for m in msgs] == list(range(len(msgs)))  # type: ignore[union-attr]
    assert len(msgs) > stuck_at


@trio_parent_test(timeout=10)
async def test_a_sender_cancelled_while_its_frame_waits_for_room_leaves_the_channel_in_step():
    """A frame queued behind a full socket goes whole even though its sender
    was cancelled: the frames after it still parse."""
    ours, peer = socket.socketpair()
    chan = Channel.from_socket(ours, get_codec('msgpack'))
    big = Call(1, 'mod', 'fn', {'blob': b'\0' * (4 * 1024 * 1024)})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chan.send, big)
        await trio.testing.wait_all_tasks_blocked()  # it waits for room
        assert chan._out  # partly written, the rest queued
        nursery.cancel_scope.cancel()
    assert chan._out, 'the rest of the frame is still queued'
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chan.send, Return(2, 'after'))  # writes the rest first
        msgs = await _read_frames(peer, 2)
    assert msgs == [big, Return(2, 'after')]
    await chan.aclose()
    peer.close()


@trio_parent_test(timeout=10)
async def test_posting_on_a_broken_channel_raises():
    left, right = _pair('msgpack')
    await right.aclose()
    with pytest.raises(trio.BrokenResourceError):
        for i in range(10_000):  # the writer task meets the broken socket; then a post raises
            await left.post(Yield(1, i))
            await trio.lowlevel.checkpoint()
    await left.aclose()


@trio_parent_test(timeout=10)
async def test_send_nowait_never_waits_for_the_peer_and_keeps_frames_whole_and_in_order():
    """A message loop answering a call itself must not wait on the peer's
    reading (two such loops could wait on each other forever): what the
    socket cannot take is queued whole, in order with later sends, and goes
    once the peer reads."""
    ours, peer = socket.socketpair()
    chan = Channel.from_socket(ours, get_codec('msgpack'))
    sent = [Return(i, b'z' * 100_000) for i in range(40)]  # far more than the socket holds
    for msg in sent:
        chan.send_nowait(msg)  # not async: it cannot wait
    assert chan._out, 'the socket is full: the rest is queued'
    async with trio.open_nursery() as nursery:
        nursery.start_soon(chan.send, StreamEnd(99))  # queued behind them, not before
        msgs = await _read_frames(peer, len(sent) + 1)
    assert msgs == [*sent, StreamEnd(99)]
    await chan.aclose()
    peer.close()
