"""The calls a parent has open in one child, and where their replies go."""
from __future__ import annotations

import itertools
from typing import Protocol

import trio

from ._codec import UndecodableValue
from ._errors import ValueDecodeError
from ._inbox import Inbox
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


class Sink(Protocol):
    """Where the replies of one call go: :class:`Calls` hands each one over
    as it arrives (synchronously, from the channel's receive loop)."""

    def deliver(self, msg: Msg) -> None:
        """A message tagged with this call's id arrived."""

    def fail(self, error: Exception, kind: str) -> None:
        """A ``kind`` message (``'Return'``, ``'Yield'``, ...) for this call
        arrived but is unusable here."""

    def close(self) -> None:
        """The channel ended: nothing more will arrive."""


class _ReplyQueue:
    """The sink of a plain call or a one-way stream: its replies queue up for
    the one task reading them. With ``limit``, a reply that finds ``limit``
    unread ones ahead of it is replaced by an :class:`Overrun`, and later
    ones are dropped (the stream is over)."""

    __slots__ = ('_inbox', '_limit')

    def __init__(self, inbox: Inbox[Reply], limit: int | None) -> None:
        self._inbox = inbox
        self._limit = limit

    def deliver(self, msg: Msg) -> None:
        limit = self._limit
        if limit is not None and len(self._inbox) >= limit:
            self._inbox.put(Overrun(limit))
            self._inbox.close()  # nothing after the overrun is kept
        else:
            self._inbox.put(msg)

    def fail(self, error: Exception, kind: str) -> None:
        self._inbox.put(LocalFailure(error))

    def close(self) -> None:
        self._inbox.close()


class Calls:
    """Routes a channel's replies to the calls waiting for them, by call id.

    The channel's receive loop (a child's supervisor runs it) hands every
    reply to :meth:`deliver`; when the channel ends, :meth:`close` ends every
    pending call at once: nothing waits on a dead actor.
    """

    def __init__(self) -> None:
        self._cids = itertools.count(1)
        self._sinks: dict[int, Sink] = {}
        self._unanswered: dict[int, tuple[str, tuple[type[Msg], ...]]] = {}
        """What each call sent and not yet finally answered calls (and which
        replies are final for it), even one its caller gave up on: what the
        actor may still be busy with."""
        self.closed = trio.Event()
        """Set once the channel has ended."""

    def open(self, *, limit: int | None = None, label: str = '') -> tuple[int, Inbox[Reply]]:
        """A new call id and the inbox its replies will arrive in (``limit``:
        see :class:`_ReplyQueue`). ``label`` names the call (its function)
        until its final answer arrives (:meth:`unanswered`)."""
        replies: Inbox[Reply] = Inbox()
        return self.attach(_ReplyQueue(replies, limit), label=label), replies

    def attach(
        self, sink: Sink, *, label: str = '', finals: tuple[type[Msg], ...] = _FINAL_REPLIES,
    ) -> int:
        """A new call id whose replies go to ``sink`` (closed at once if the
        channel has already ended); ``finals`` are the replies that end it."""
        cid = next(self._cids)
        if label:
            self._unanswered[cid] = (label, finals)
        self._sinks[cid] = sink
        if self.closed.is_set():
            sink.close()
        return cid

    def forget(self, cid: int) -> None:
        """The caller is done with ``cid``: drop replies that still come."""
        sink = self._sinks.pop(cid, None)
        if sink is not None:
            sink.close()

    def unanswered(self) -> list[str]:
        """The labels of the calls sent and not finally answered."""
        return [label for label, _ in self._unanswered.values()]

    def deliver(self, msg: Msg) -> None:
        cid = getattr(msg, 'cid', -1)
        pending = self._unanswered.get(cid)
        if pending is not None and isinstance(msg, pending[1]):
            del self._unanswered[cid]
        sink = self._sinks.get(cid)
        if sink is not None:
            sink.deliver(msg)

    def fail(self, cid: int, error: Exception, kind: str = 'Return') -> None:
        """Call ``cid`` raises ``error``: its ``kind`` reply was unusable here."""
        sink = self._sinks.get(cid)
        if sink is not None:
            sink.fail(error, kind)

    def fail_undecodable(self, exc: UndecodableValue, sender: str) -> None:
        """A reply from ``sender`` whose value does not decode here: its call
        raises :class:`ValueDecodeError` (the channel is still in step)."""
        self.fail(exc.cid, ValueDecodeError(
            f'{sender} sent a {exc.kind} value that cannot be decoded here: '
            f'{type(exc.cause).__name__}: {exc.cause}'
        ), exc.kind)

    def close(self) -> None:
        self.closed.set()
        for sink in self._sinks.values():
            sink.close()
