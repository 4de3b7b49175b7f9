"""The calls a parent has open in one child, and where their replies go."""
from __future__ import annotations

import itertools
import math

import trio

from ._msgs import Failed, Msg, Return, StreamEnd


class Overrun:
    """Put in a stream's reply channel, locally, in place of the item that
    found its buffer full (``on_overrun='raise'``): nothing after it is kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit


class LocalFailure:
    """Put in a call's reply channel, locally, when its reply arrived but
    could not be used here (its value does not decode): the call raises
    ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error


Reply = Msg | Overrun | LocalFailure

_FINAL_REPLIES = (Return, Failed, StreamEnd)


class Calls:
    """Routes a child's replies to the calls waiting for them, by call id.

    The child's receive loop (run by its supervisor) hands every reply to
    :meth:`deliver`; when the channel ends, :meth:`close` ends every pending
    call's reply stream at once: nothing waits on a dead actor.
    """

    def __init__(self) -> None:
        self._cids = itertools.count(1)
        self._waiters: dict[int, trio.MemorySendChannel[Reply]] = {}
        self._limits: dict[int, int] = {}
        self._unanswered: dict[int, str] = {}
        """What each call sent and not yet finally answered calls, even one
        its caller gave up on: what the actor may still be busy with."""
        self.closed = trio.Event()
        """Set once the child's channel has ended."""

    def open(
        self, *, limit: int | None = None, label: str = '',
    ) -> tuple[int, trio.MemoryReceiveChannel[Reply]]:
        """A new call id and the stream its replies will arrive on. With
        ``limit``, a reply that finds ``limit`` unread ones ahead of it is
        replaced by an :class:`Overrun`, and the call's later replies are
        dropped (the stream is over). ``label`` names the call (its
        function) until its final answer arrives (:meth:`unanswered`)."""
        cid = next(self._cids)
        if label:
            self._unanswered[cid] = label
        send, replies = trio.open_memory_channel[Reply](math.inf)
        self._waiters[cid] = send
        if limit is not None:
            self._limits[cid] = limit
        if self.closed.is_set():
            send.close()
        return cid, replies

    def forget(self, cid: int) -> None:
        """The caller is done with ``cid``: drop replies that still come."""
        send = self._waiters.pop(cid, None)
        self._limits.pop(cid, None)
        if send is not None:
            send.close()

    def unanswered(self) -> list[str]:
        """The labels of the calls sent and not finally answered."""
        return list(self._unanswered.values())

    def deliver(self, msg: Msg) -> None:
        cid = getattr(msg, 'cid', -1)
        if isinstance(msg, _FINAL_REPLIES):
            self._unanswered.pop(cid, None)
        waiter = self._waiters.get(cid)
        if waiter is None:
            return
        limit = self._limits.get(cid)
        if limit is not None and waiter.statistics().current_buffer_used >= limit:
            del self._waiters[cid]  # nothing after the overrun is kept
            _put(waiter, Overrun(limit))
            waiter.close()
        else:
            _put(waiter, msg)

    def fail(self, cid: int, error: Exception) -> None:
        """Call ``cid`` raises ``error`` (its reply was unusable here)."""
        waiter = self._waiters.get(cid)
        if waiter is not None:
            _put(waiter, LocalFailure(error))

    def close(self) -> None:
        self.closed.set()
        for waiter in self._waiters.values():
            waiter.close()


def _put(waiter: trio.MemorySendChannel[Reply], reply: Reply) -> None:
    try:
        waiter.send_nowait(reply)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the caller gave up on this call
