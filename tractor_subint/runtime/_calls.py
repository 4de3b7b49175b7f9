"""The calls a parent has open in one child, and where their replies go."""
from __future__ import annotations

import itertools
import math

import trio

from ._msgs import Msg


class Calls:
    """Routes a child's replies to the calls waiting for them, by call id.

    The child's receive loop (run by its supervisor) hands every reply to
    :meth:`deliver`; when the channel ends, :meth:`close` ends every pending
    call's reply stream at once: nothing waits on a dead actor.
    """

    def __init__(self) -> None:
        self._cids = itertools.count(1)
        self._waiters: dict[int, trio.MemorySendChannel[Msg]] = {}
        self.closed = trio.Event()
        """Set once the child's channel has ended."""

    def open(self) -> tuple[int, trio.MemoryReceiveChannel[Msg]]:
        """A new call id and the stream its replies will arrive on."""
        cid = next(self._cids)
        send, replies = trio.open_memory_channel[Msg](math.inf)
        self._waiters[cid] = send
        if self.closed.is_set():
            send.close()
        return cid, replies

    def forget(self, cid: int) -> None:
        """The caller is done with ``cid``: drop replies that still come."""
        send = self._waiters.pop(cid, None)
        if send is not None:
            send.close()

    def deliver(self, msg: Msg) -> None:
        waiter = self._waiters.get(getattr(msg, 'cid', -1))
        if waiter is not None:
            try:
                waiter.send_nowait(msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the caller gave up on this call

    def close(self) -> None:
        self.closed.set()
        for waiter in self._waiters.values():
            waiter.close()
