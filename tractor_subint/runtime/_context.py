"""Inter-actor task contexts: one task in each of two actors, linked.

The caller enters ``Portal.open_context(fn, **kwargs)``; the callee, a
``@context`` function in the other actor, runs ``fn(ctx, **kwargs)``, calls
``ctx.started(value)`` (the caller's block then begins, with ``value``),
and may then open a two-way stream with the caller (``ctx.open_stream()``)
before it returns its result. The two tasks are linked both ways:

- an error in the callee ends the caller's block (its scope is cancelled)
  and is raised there, as :class:`RemoteActorError`;
- an error in the caller's block, or its cancellation, cancels the callee;
- ``ctx.cancel()`` by the caller cancels the callee, and the caller then
  takes the callee's :class:`ContextCancelled` as the acknowledgement it
  is, not as an error; a callee cancelled by anyone else raises it;
- the caller's block, when it ends, waits for the callee's result
  (``ctx.wait_for_result()``), discarding stream values still in flight.

The wire protocol is in ``_msgs.OpenContext``; flow control is the
streams' (``_streaming``). Each side holds a :class:`Context`, fed by its
channel's receive loop through :meth:`Context.deliver` (synchronously), and
read by its task (asynchronously).
"""
from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import trio

from ._bootspec import Uid
from ._calls import LocalFailure
from ._channel import Channel
from ._errors import ContextCancelled, remote_error
from ._inbox import Inbox
from ._msgs import CancelCall, Credit, Failed, Msg, Return, Started, StreamEnd, Yield
from ._payloads import check, convert
from ._streaming import CreditBatcher, MsgStream, SendCredit

if TYPE_CHECKING:
    from ._portal import Portal

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

CONTEXT_CANCEL_TIMEOUT = 0.5
"""Seconds a caller whose block failed (or was cancelled) waits for the
callee to acknowledge the cancel before it goes on raising its own error."""

Side = Literal['parent', 'child']


@dataclass(frozen=True)
class ContextMeta:
    """What ``@context`` records about a function."""

    ctx_param: str
    """The parameter the :class:`Context` is passed as."""
    pld_spec: Any = None
    """The declared type of the context's payloads (``started`` values and
    stream items), or None for any."""


_META_ATTR = '_tractor_subint_context'


def context[F: Callable[..., Any]](fn: F | None = None, *, pld_spec: Any = None) -> Any:
    """Mark an async function as a context function, for
    ``Portal.open_context()``: it takes its :class:`Context` as a parameter
    named ``ctx`` (or annotated ``Context``).

    ``pld_spec`` declares the type of the context's payloads (the
    ``started()`` value and stream items, both ways); see the README's
    "Typed payloads". Usable bare (``@context``) or called
    (``@context(pld_spec=Point | None)``).
    """
    def mark(fn: F) -> F:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f'@context needs an async function, not {fn!r}')
        setattr(fn, _META_ATTR, ContextMeta(_ctx_param(fn), pld_spec))
        return fn

    return mark if fn is None else mark(fn)


def _ctx_param(fn: Callable[..., Any]) -> str:
    params = inspect.signature(fn).parameters
    for name, param in params.items():
        annotation = param.annotation
        text = annotation if isinstance(annotation, str) else getattr(annotation, '__name__', '')
        if text.rpartition('.')[2] == 'Context':
            return name
    if 'ctx' in params:
        return 'ctx'
    raise TypeError(
        f'{fn.__qualname__} takes no context: a @context function takes its Context as a '
        f'parameter named ctx (or annotated Context)'
    )


def context_meta(fn: object) -> ContextMeta | None:
    """The :class:`ContextMeta` of a ``@context`` function, else None."""
    meta = getattr(fn, _META_ATTR, None)
    return meta if isinstance(meta, ContextMeta) else None


def require_context_function(fn: object, name: str) -> ContextMeta:
    meta = context_meta(fn)
    if meta is None:
        raise TypeError(
            f'{name} is not a @context function: open_context() needs one '
            f'(decorate it with @tractor_subint.context); call plain functions with portal.run()'
        )
    return meta


_FINAL = object()
"""Queued last in a context's inbound items: its outcome is known."""


class Context:
    """One side of an inter-actor task context (see the module docstring).

    The caller's side (``side == 'parent'``) comes from
    ``Portal.open_context()``; the callee's (``'child'``) is its function's
    ``ctx`` argument.
    """

    def __init__(
        self,
        *,
        side: Side,
        channel: Channel,
        own_uid: Uid,
        peer_uid: Uid,
        task: str,
        window: int,
        portal: Portal | None = None,
        pld_spec: Any = None,
        result_hint: Any = None,
    ) -> None:
        self.side: Side = side
        self.chan = channel
        self.cid = 0
        """The context's id on its channel (set once it is registered)."""
        self.portal = portal
        """The caller's portal to the callee's actor (None on the callee's side)."""
        self.own_uid = own_uid
        self.peer_uid = peer_uid
        self.task = task
        """``module.qualname`` of the callee's function."""
        self.cancel_called = False
        """Whether this side called :meth:`cancel` (or its block failed)."""
        self.pld_spec = pld_spec
        """The declared type of this context's payloads (``@context(pld_spec=)``)."""
        self._result_hint = result_hint
        self._scope = trio.CancelScope()
        self._inbound: Inbox[object] = Inbox()
        self._credit = SendCredit(window)
        self._reads = CreditBatcher(window)
        self._started = trio.Event()
        self._first: Any = None
        self._has_first = False
        self._started_sent = False
        self._final = trio.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._gone = False
        self._gone_error: BaseException | None = None
        self._peer_closed_stream = False
        self._end_read = False
        self._stream: MsgStream | None = None
        self._cancel_requester: Uid | None = None

    def __repr__(self) -> str:
        return f'<Context {self.side} cid={self.cid} {self.task}>'

    # -- what the channel's receive loop hands over (synchronous) -------------------

    def deliver(self, msg: Msg) -> None:
        if isinstance(msg, Yield):
            self._put(msg)
        elif isinstance(msg, Credit):
            self._credit.grant(msg.n)
        elif isinstance(msg, StreamEnd):
            self._peer_closed_stream = True
            self._put(msg)
            self._credit.wake()
        elif isinstance(msg, Started):
            if self.side == 'parent' and not self._has_first:
                self._first, self._has_first = msg.value, True
                self._started.set()
        elif isinstance(msg, Return):
            if self.side == 'parent':
                self._finish(result=msg.value)
        elif isinstance(msg, Failed):
            if self.side == 'parent':
                self._finish(error=remote_error(msg.error))
        elif isinstance(msg, CancelCall) and self.side == 'child':
            self._cancel_requester = self.peer_uid
            self._scope.cancel()

    def fail(self, error: Exception, kind: str) -> None:
        """A message of this context did not decode here: a stream item's
        read raises ``error``; a ``Started`` or ``Return`` that cannot be
        read ends the context with it."""
        if kind in ('Started', 'Return'):
            self._finish(error=error)
        else:
            self._put(LocalFailure(error))

    def close(self) -> None:
        """The channel ended."""
        if self.side == 'child':
            self._scope.cancel()
        elif not self._final.is_set():
            self._gone = True
            self._finish()

    def _put(self, item: object) -> None:
        self._inbound.put(item)  # dropped once closed: the outcome is known, nothing after it matters

    def _finish(self, *, result: Any = None, error: BaseException | None = None) -> None:
        if self._final.is_set():
            return
        self._result, self._error = result, error
        self._final.set()
        self._started.set()  # a caller still waiting for started() learns the outcome
        self._put(_FINAL)
        self._inbound.close()
        self._credit.wake()
        if self._scope_should_end():
            self._scope.cancel()

    def _scope_should_end(self) -> bool:
        """Whether the outcome must end the caller's block at once: an error
        (not the acknowledgement of its own cancel request)."""
        if self.side != 'parent':
            return False
        return self._gone or (self._error is not None and not self._acknowledges_cancel(self._error))

    def _acknowledges_cancel(self, error: BaseException) -> bool:
        """Whether ``error`` is the callee's answer to a cancel this side (its
        actor) asked for: ``ctx.cancel()``, or cancelling the callee's actor."""
        if not isinstance(error, ContextCancelled) or error.canceller != self.own_uid:
            return False
        child = getattr(self.portal, '_child', None)
        return self.cancel_called or bool(getattr(child, 'cancel_requested', False))

    # -- the public API ---------------------------------------------------------------

    @property
    def canceller(self) -> Uid | None:
        """The actor that cancelled this context, if one did."""
        if isinstance(self._error, ContextCancelled):
            return self._error.canceller
        return self._cancel_requester

    @property
    def cancelled_caught(self) -> bool:
        """Whether this context ended by a cancellation (either side's)."""
        if self.side == 'child':
            return self._scope.cancelled_caught
        return isinstance(self._error, ContextCancelled)

    @property
    def maybe_error(self) -> BaseException | None:
        """The error this context ended with, if it has ended with one."""
        return self._error

    async def started(self, value: Any = None) -> None:
        """(Callee) Unblock the caller's ``open_context()``, handing it
        ``value``; once, before :meth:`open_stream`."""
        if self.side != 'child':
            raise RuntimeError('started() is for the context function (the callee) to call')
        if self._started_sent:
            raise RuntimeError(f'{self.task}: started() was already called')
        self._check_payload(value, 'started() value')
        await self._send(Started(self.cid, value))
        self._started_sent = True

    @asynccontextmanager
    async def open_stream(self) -> AsyncIterator[MsgStream]:
        """A two-way :class:`MsgStream` with the other side (each side opens
        its own end; one stream per context). The callee opens it after
        :meth:`started`. Leaving the block closes this end."""
        if self._stream is not None:
            raise RuntimeError(f'{self.task}: this context\'s stream was already opened')
        if self.side == 'child' and not self._started_sent:
            raise RuntimeError(f'{self.task}: call ctx.started() before ctx.open_stream()')
        self._stream = stream = MsgStream(self)
        try:
            yield stream
        except BaseException:
            if self.side == 'child':
                # Its task is failing (or being cancelled): the error that
                # ends it ends the caller's stream too, and a StreamEnd first
                # would read as a clean end there.
                stream._closed = True
            raise
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def cancel(self) -> None:
        """Cancel the other side's task (caller) or this context's own task
        (callee). The caller's block is not cancelled by this: it goes on,
        and its end takes the callee's :class:`ContextCancelled` as the
        acknowledgement (:meth:`wait_for_result` returns it)."""
        self.cancel_called = True
        if self.side == 'child':
            self._cancel_requester = self.own_uid
            self._scope.cancel()
            return
        if not self._final.is_set():
            with trio.CancelScope(shield=True):
                try:
                    await self.chan.send(CancelCall(self.cid))
                except _GONE:
                    pass

    async def wait_for_result(self) -> Any:
        """(Caller) Wait for the callee's task to end and return its result.

        Stream values still in flight are discarded. The callee's error is
        raised (:class:`RemoteActorError`; :class:`ContextCancelled` if
        someone else cancelled it); if this side cancelled it, its
        :class:`ContextCancelled` is returned instead.
        """
        if self.side != 'parent':
            raise RuntimeError('only the side that opened the context waits for its result')
        while not self._final.is_set():
            item = await self._next_inbound()
            if isinstance(item, Yield):
                await self._read_one()
        return await self._outcome()

    async def result(self) -> Any:
        """:meth:`wait_for_result` (tractor's older name)."""
        return await self.wait_for_result()

    # -- the stream's source (see _streaming.StreamSource) ----------------------------

    async def receive_item(self) -> Any:
        if self._end_read:
            await self._raise_end()
        item = await self._next_inbound()
        if isinstance(item, Yield):
            await self._read_one()
            return self._payload(item.value, 'a stream item')
        if isinstance(item, LocalFailure):
            raise item.error
        self._end_read = True
        await self._raise_end()

    async def send_item(self, value: Any) -> None:
        self._check_payload(value, 'stream item')
        while True:
            if self._final.is_set() or self._gone:
                await self._raise_end()
            if self._end_read:
                raise trio.EndOfChannel('the other side closed the stream')
            if self._credit.try_take():
                break
            if self._peer_closed_stream:
                # Closed, and not reading any more: no credit will come. (With
                # credit left, a send that crossed the close goes, and is
                # dropped there, as tractor's does.)
                raise trio.EndOfChannel('the other side closed the stream')
            await self._credit.wait_changed()
        await self._send(Yield(self.cid, value), post=True)

    async def close_stream(self) -> None:
        if self._final.is_set() or self._gone:
            return
        try:
            await self.chan.send(StreamEnd(self.cid))
        except _GONE:
            pass

    # -- internals --------------------------------------------------------------------

    async def _next_inbound(self) -> object:
        try:
            return await self._inbound.get()
        except trio.EndOfChannel:
            return _FINAL

    async def _read_one(self) -> None:
        """Flow control: one inbound value was read (or discarded)."""
        n = self._reads.read_one()
        if n and not self._final.is_set():
            try:
                await self.chan.send(Credit(self.cid, n))
            except _GONE:
                pass  # the other side is gone: its end arrives next

    async def _raise_end(self) -> None:
        """What reading past the end of the stream raises: the context's
        error, else :class:`trio.EndOfChannel`."""
        if self._final.is_set() or self._gone:
            error = await self._ending_error()
            if error is not None and not self._acknowledges_cancel(error):
                raise error
            raise trio.EndOfChannel('the other side\'s task has ended')
        raise trio.EndOfChannel('the other side closed the stream')

    async def _ending_error(self) -> BaseException | None:
        if self._gone:
            if self._gone_error is None:
                assert self.portal is not None
                self._gone_error = await self.portal._gone_error()
            return self._gone_error
        return self._error

    async def _outcome(self) -> Any:
        error = await self._ending_error()
        if error is None:
            return convert(self._result, self._result_hint, f'the result of {self.task}')
        if self._acknowledges_cancel(error):
            return error
        raise error

    async def _send(self, msg: Msg, *, post: bool = False) -> None:
        try:
            await (self.chan.post(msg) if post else self.chan.send(msg))
        except _GONE:
            if self.side == 'parent':
                self._gone = True
                await self._raise_end()
            raise

    def _check_payload(self, value: Any, what: str) -> None:
        """Refuse to send a payload that is not what ``pld_spec`` declares."""
        check(value, self.pld_spec, f'{self.task}: the {what}')

    def _payload(self, value: Any, what: str) -> Any:
        """An arrived payload, as ``pld_spec`` declares it."""
        return convert(value, self.pld_spec, f'{self.task}: {what}') if self.pld_spec is not None else value

    # -- the caller's side: Portal.open_context() ------------------------------------------

    async def _wait_started(self) -> Any:
        await self._started.wait()
        if self._has_first:
            return self._payload(self._first, 'the started() value')
        await self._outcome()
        raise RuntimeError(
            f'{self.task} ended before it called ctx.started(): a @context function must '
            f'call it first'
        )

    async def _abandon(self) -> None:
        """The caller's block failed or was cancelled: cancel the callee and
        give it a moment to acknowledge (shielded, bounded)."""
        if self._final.is_set():
            return
        await self.cancel()
        with trio.move_on_after(CONTEXT_CANCEL_TIMEOUT, shield=True):
            await self._final.wait()
