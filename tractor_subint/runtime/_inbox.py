"""Where a channel's reader leaves messages for the one task that reads them.

A channel's receive loop hands each message to its call, stream or context
synchronously (``_calls``, ``_context``); the task that owns that call reads
them at its own pace. An :class:`Inbox` is the queue between the two, built
for this one shape (one synchronous writer, one reader at a time) and for
its cost: a stream's items arrive many per socket read, and a reader that
finds an item waiting takes it without a trip through trio's scheduler
(which is what one wake-up per item would cost: several microseconds each).

It is still fair: a reader that has taken :data:`YIELD_EVERY` items in a row
without waiting lets other tasks run once (a schedule point), and every
:meth:`Inbox.get` is a cancellation point.
"""
from __future__ import annotations

from collections import deque

import trio

YIELD_EVERY = 32
"""Items a reader may take in a row without a schedule point."""


class Inbox[T]:
    """An unbounded FIFO queue fed by :meth:`put` (synchronous, never
    blocks) and read by :meth:`get`, one reader at a time. :meth:`close`
    ends it: what is queued is still read, then :meth:`get` raises
    :class:`trio.EndOfChannel`."""

    __slots__ = ('_items', '_waiter', '_closed', '_streak')

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiter: trio.lowlevel.Task | None = None
        self._closed = False
        self._streak = 0

    def __len__(self) -> int:
        """How many items wait unread."""
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) once closed."""
        if self._closed:
            return False
        self._items.append(item)
        self._wake()
        return True

    def close(self) -> None:
        """Nothing more will be put; the reader gets what is queued, then
        :class:`trio.EndOfChannel`. Idempotent."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    async def get(self) -> T:
        """The next item, waiting for one if none is queued;
        :class:`trio.EndOfChannel` once closed and empty."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items:
            self._streak += 1
            if self._streak >= YIELD_EVERY:
                self._streak = 0
                await trio.lowlevel.cancel_shielded_checkpoint()
            return self._items.popleft()
        self._streak = 0
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            if self._waiter is not None:
                raise trio.BusyResourceError('another task is already reading this inbox')
            self._waiter = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._waiter = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        return self._items.popleft()

    def get_nowait(self) -> T:
        """The next queued item; :class:`trio.WouldBlock` if none (and
        :class:`trio.EndOfChannel` once closed and empty)."""
        if self._items:
            return self._items.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock
