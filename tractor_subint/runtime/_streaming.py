"""Streams between actors: :class:`MsgStream` and its flow control.

A stream is a face over a *source* that knows the wire: the one-way stream
of ``Portal.open_stream_from`` (an async generator in the other actor) or
the two-way stream of a context (``Context.open_stream``). Flow control is
the same for both: a receiver lets its sender have ``window`` unread items
in flight, and grants more (:class:`~._msgs.Credit`) as it reads, in
batches (:class:`CreditBatcher`); a sender out of credit waits
(:class:`SendCredit`).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio

DEFAULT_STREAM_BUFFER = 64
"""Stream items that may wait unread on the receiving side (``max_buffer``)."""


class SendCredit:
    """How many more items a sender may send before the receiver's next
    :class:`~._msgs.Credit` (flow control)."""

    def __init__(self, window: int) -> None:
        self.available = window
        self._changed = trio.Event()

    async def take(self) -> None:
        """Wait for one item's credit and take it."""
        while not self.try_take():
            await self.wait_changed()

    def try_take(self) -> bool:
        if self.available <= 0:
            return False
        self.available -= 1
        return True

    async def wait_changed(self) -> None:
        """Until the next :meth:`grant` or :meth:`wake`."""
        await self._changed.wait()

    def grant(self, n: int) -> None:
        self.available += n
        self.wake()

    def wake(self) -> None:
        """Wake every :meth:`wait_changed` (credit came, or the stream ended
        and the sender must look again at why it waits)."""
        changed, self._changed = self._changed, trio.Event()
        changed.set()


class CreditBatcher:
    """The receiving side's count of items read since its last grant: the
    sender gets them back in batches of half the window (one small message
    per batch instead of one per item)."""

    def __init__(self, window: int) -> None:
        self._batch = max(1, window // 2)
        self._read = 0

    def read_one(self) -> int:
        """Count one item read; the credit to grant now (0: not yet)."""
        self._read += 1
        if self._read < self._batch:
            return 0
        n, self._read = self._read, 0
        return n


class StreamSource(Protocol):
    """What a :class:`MsgStream` reads from and writes to."""

    async def receive_item(self) -> Any:
        """The next item; :class:`trio.EndOfChannel` once the other side is
        done; the other side's error as it is raised here."""
        ...

    async def send_item(self, value: Any) -> None:
        """Send ``value`` to the other side (waiting for credit)."""
        ...

    async def close_stream(self) -> None:
        """This side is done with the stream: tell the other side."""
        ...


class _Iterable:
    """``async for`` over ``receive()`` until :class:`trio.EndOfChannel`."""

    async def receive(self) -> Any:
        raise NotImplementedError

    def __aiter__(self) -> _Iterable:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class MsgStream(_Iterable):
    """A stream of values between two actors' tasks.

    ``async for value in stream`` (or :meth:`receive`) reads until the other
    side closes its end; :meth:`send` writes (two-way streams, from
    ``ctx.open_stream()``); :meth:`aclose` closes this end, which ends the
    other side's reading (and writing: its next :meth:`send` raises
    :class:`trio.EndOfChannel`). An error on the other side is raised here,
    by the next read or write.
    """

    def __init__(self, source: StreamSource) -> None:
        self._source = source
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether this end was closed (:meth:`aclose`)."""
        return self._closed

    async def receive(self) -> Any:
        """The next value; :class:`trio.EndOfChannel` once the other side
        closed its end (or its task returned)."""
        if self._closed:
            raise trio.ClosedResourceError('this stream was closed')
        return await self._source.receive_item()

    async def send(self, value: Any) -> None:
        """Send ``value`` to the other side; waits while the other side has
        ``window`` unread values (flow control)."""
        if self._closed:
            raise trio.ClosedResourceError('this stream was closed')
        await self._source.send_item(value)

    async def aclose(self) -> None:
        """Close this end (idempotent)."""
        if self._closed:
            return
        self._closed = True
        await self._source.close_stream()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[BroadcastReceiver]:
        """A private copy of everything this stream receives from now on,
        for one of several local tasks (a broadcast): each subscriber reads
        every value. Whichever subscriber needs the next value reads it from
        the stream for all; a slow subscriber's values queue up for it."""
        hub = self._hub()
        receiver = hub.subscribe()
        try:
            yield receiver
        finally:
            hub.unsubscribe(receiver)

    def _hub(self) -> _BroadcastHub:
        hub: _BroadcastHub | None = getattr(self, '_broadcast', None)
        if hub is None:
            hub = self._broadcast = _BroadcastHub(self)
        return hub


class _BroadcastHub:
    """Fans one stream out to its subscribers: whichever subscriber needs
    the next value reads it from the stream, under a lock, and hands it to
    every subscriber's queue."""

    def __init__(self, stream: MsgStream) -> None:
        self._stream = stream
        self._lock = trio.Lock()
        self._subscribers: list[BroadcastReceiver] = []
        self._end: BaseException | None = None

    def subscribe(self) -> BroadcastReceiver:
        receiver = BroadcastReceiver(self)
        self._subscribers.append(receiver)
        return receiver

    def unsubscribe(self, receiver: BroadcastReceiver) -> None:
        if receiver in self._subscribers:
            self._subscribers.remove(receiver)

    async def next_for(self, receiver: BroadcastReceiver) -> Any:
        while not receiver.pending:
            if self._end is not None:
                raise _copy(self._end)
            async with self._lock:
                if receiver.pending or self._end is not None:
                    continue
                try:
                    value = await self._stream.receive()
                except (trio.EndOfChannel, Exception) as end:
                    self._end = end
                    continue
                for subscriber in self._subscribers:
                    subscriber.pending.append(value)
        return receiver.pending.pop(0)


def _copy(end: BaseException) -> BaseException:
    """Every subscriber raises the stream's end: a fresh EndOfChannel each,
    the same error object otherwise."""
    return trio.EndOfChannel() if isinstance(end, trio.EndOfChannel) else end


class BroadcastReceiver(_Iterable):
    """One subscriber's view of a :meth:`MsgStream.subscribe` broadcast."""

    def __init__(self, hub: _BroadcastHub) -> None:
        self._hub = hub
        self.pending: list[Any] = []

    async def receive(self) -> Any:
        return await self._hub.next_for(self)
