"""A portal: the parent's RPC face of one child actor.

Calls go out on the child's channel; their replies come back through the
child's :class:`Calls` table, fed by the receive loop its supervisor runs
(``_child``). What the portal cannot do itself (cancel the actor, say how
it ended, hand over a ``run_in_actor`` result) it asks that supervisor,
through the narrow :class:`ChildLink` interface.
"""
from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

import trio

from ..spawn import ChildExitStatus
from ._bootspec import Uid
from ._calls import Calls, LocalFailure, Overrun, Reply
from ._channel import Channel
from ._context import Context, require_context_function
from ._errors import ActorCancelled, ActorFailure, StreamOverrun, remote_error
from ._inbox import Inbox
from ._msgs import Call, CancelCall, Credit, Failed, OpenContext, Return, StreamEnd, Yield
from ._payloads import convert, item_hint, result_hint
from ._state import current_actor
from ._streaming import DEFAULT_STREAM_BUFFER, CreditBatcher, MsgStream
from ._targets import call_ref, check_target, func_ref

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

OverrunPolicy = Literal['wait', 'raise']

GONE_GRACE = 1.0
"""Seconds a call whose child went away waits for the child's exit status."""


class ChildLink(Protocol):
    """What a portal needs from the supervisor of its child."""

    @property
    def pid(self) -> int: ...

    @property
    def exit_status(self) -> ChildExitStatus | None: ...

    @property
    def cancel_requested(self) -> bool:
        """Whether the parent asked the child to stop."""
        ...

    @property
    def cancelled_by(self) -> str | None:
        """Who cancelled the child while it was still answering ('this
        caller', 'its nursery'); None if nobody did (or it had gone first)."""
        ...

    def gone_reason(self) -> str:
        """Why the child went away, as the tail of "actor X ..."."""
        ...

    async def wait_exited(self) -> None:
        """Until the child process has exited."""
        ...

    async def stop(self, by: str = ...) -> bool:
        """The kill ladder; whether the actor acknowledged the cancel. ``by``
        says who asked (for later calls' :class:`ActorCancelled`)."""
        ...

    async def result(self) -> Any:
        """The ``run_in_actor`` result (raising its error)."""
        ...


class Portal:
    """Call functions in a child actor, stream from it, cancel it."""

    def __init__(
        self,
        name: str,
        uid: Uid,
        channel: Channel,
        calls: Calls,
        child: ChildLink,
        spawn_time: float,
    ) -> None:
        self.name = name
        self.uid = uid
        self.channel = channel
        self.spawn_time = spawn_time
        """Seconds from the spawn request until the child said it was ready."""
        self._calls = calls
        self._child = child
        self._trio_token = trio.lowlevel.current_trio_token()
        self._owning_loop = _describe_loop()

    def __repr__(self) -> str:
        return f'<Portal {self.name}[{self.uid[1][:8]}] pid={self.pid}>'

    @property
    def pid(self) -> int:
        return self._child.pid

    @property
    def chan(self) -> Channel:
        """The channel to the actor (tractor's name); ``portal.chan.aid``
        is the actor's identity."""
        return self.channel

    # -- public API ---------------------------------------------------------

    async def run(self, fn: Callable[..., object], **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` in the actor and return its result.

        ``fn`` is sent by reference (module and name): its module must be
        enabled in the actor or importable there. A remote exception is
        raised here as :class:`RemoteActorError`.
        """
        self._check_loop()
        pending = await self._submit(fn, kwargs)
        return await pending.result()

    async def submit(self, fn: Callable[..., object], **kwargs: Any) -> PendingCall:
        """Send the call ``fn(**kwargs)`` to the actor now; collect its result
        later with ``await pending.result()`` (as :meth:`run` would return it)."""
        self._check_loop()
        return await self._submit(fn, kwargs)

    async def _submit(self, fn: Callable[..., object], kwargs: dict[str, Any]) -> PendingCall:
        ref = call_ref(fn, stream=False)
        label = '.'.join(ref)
        cid, replies = self._calls.open(label=label)
        try:
            await self._send_call(Call(cid, *ref, kwargs, False))
        except BaseException:
            self._calls.forget(cid)
            raise
        return PendingCall(self, cid, replies, result_hint(fn), label)

    async def wait_for_result(self) -> Any:
        """The result of the function given to ``run_in_actor`` (raising its
        error); also works after the nursery has exited."""
        self._check_loop()
        return await self._child.result()

    async def result(self) -> Any:
        """:meth:`wait_for_result` (tractor's older name)."""
        return await self.wait_for_result()

    @asynccontextmanager
    async def open_stream_from(
        self,
        fn: Callable[..., object],
        *,
        max_buffer: int = DEFAULT_STREAM_BUFFER,
        on_overrun: OverrunPolicy = 'wait',
        **kwargs: Any,
    ) -> AsyncIterator[MsgStream]:
        """Run the async generator function ``fn(**kwargs)`` in the actor and
        yield a stream of what it yields (``async for``). Leaving the block
        early cancels the remote generator.

        At most ``max_buffer`` items wait here unread. When the buffer is
        full, ``on_overrun='wait'`` (the default) makes the producer wait
        until this side has read more (flow control); ``'raise'`` lets it run
        free and ends the stream with :class:`StreamOverrun` here instead.
        (``max_buffer`` and ``on_overrun`` are therefore not passed to ``fn``.)
        """
        self._check_loop()
        check_target(fn, stream=True)
        if not isinstance(max_buffer, int) or isinstance(max_buffer, bool) or max_buffer < 1:
            raise ValueError(f'max_buffer must be a positive int, not {max_buffer!r}')
        if on_overrun not in ('wait', 'raise'):
            raise ValueError(f"on_overrun must be 'wait' or 'raise', not {on_overrun!r}")
        window = max_buffer if on_overrun == 'wait' else 0
        limit = None if on_overrun == 'wait' else max_buffer
        async with self._open_stream_call(fn, kwargs, window=window, limit=limit) as (cid, replies):
            source = _GeneratorStream(self, cid, replies, window=window, item_hint=item_hint(fn))
            try:
                yield MsgStream(source)
            finally:
                if not source.finished:
                    await self._cancel_remote(cid)

    @asynccontextmanager
    async def open_context(
        self, fn: Callable[..., object], **kwargs: Any,
    ) -> AsyncIterator[tuple[Context, Any]]:
        """Start the ``@context`` function ``fn(ctx, **kwargs)`` in the actor
        and enter once it has called ``ctx.started(first)``, with
        ``(ctx, first)``: the two tasks are now linked (see ``Context``).

        An error in the remote task ends this block and is raised here; an
        error in this block (or its cancellation) cancels the remote task.
        The block's end waits for the remote task's result
        (``ctx.wait_for_result()``).
        """
        self._check_loop()
        check_target(fn, stream=False)
        module, qualname = func_ref(fn)
        task = f'{module}.{qualname}'
        meta = require_context_function(fn, task)
        ctx = Context(
            side='parent', channel=self.channel, own_uid=current_actor().uid, peer_uid=self.uid,
            task=task, window=DEFAULT_STREAM_BUFFER, portal=self, pld_spec=meta.pld_spec,
            result_hint=result_hint(fn),
        )
        ctx.cid = self._calls.attach(ctx)
        try:
            await self._send_call(
                OpenContext(ctx.cid, module, qualname, kwargs, ctx.own_uid, DEFAULT_STREAM_BUFFER)
            )
            try:
                first = await ctx._wait_started()
            except BaseException:
                await ctx._abandon()
                raise
            try:
                with ctx._scope:
                    yield ctx, first
            except BaseException:
                await ctx._abandon()
                raise
            await ctx.wait_for_result()
        finally:
            self._calls.forget(ctx.cid)

    async def cancel_actor(self) -> bool:
        """Cancel the actor: ask it to stop, then terminate and kill it if it
        does not go (bounds in ``_supervise``). True if it acknowledged the
        request; either way it is gone when this returns. Later calls on this
        portal raise :class:`ActorCancelled` at once."""
        self._check_loop()
        return await self._child.stop(by='this caller')

    def _check_loop(self) -> None:
        """Refuse use from another ``trio.run()`` than the one that spawned
        the actor: the portal's channel, calls and supervisor live in that
        loop, and another loop waiting on them would wedge both."""
        try:
            token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            token = None
        if token is self._trio_token:
            return
        raise RuntimeError(
            f'{self!r} belongs to the trio.run() that spawned it ({self._owning_loop}); it '
            f'cannot be used from another trio.run() ({_describe_loop()}). From another '
            f'thread, call into the owning loop with trio.from_thread.run()'
        )

    # -- calls ----------------------------------------------------------------

    async def _gone_error(self) -> ActorFailure:
        """The error for a call whose child went away, with its exit status:
        the supervisor gets a moment to reap it, even while we are being
        cancelled (the nursery may have noticed the exit too)."""
        with trio.move_on_after(GONE_GRACE, shield=True):
            await self._child.wait_exited()
        by = self._child.cancelled_by
        if by is not None:
            return ActorCancelled(self.name, by, self._child.exit_status, pending=True)
        return ActorFailure(
            self.name, self._child.gone_reason(), self._child.exit_status,
            stop_requested=self._child.cancel_requested,
        )

    async def _cancel_remote(self, cid: int) -> None:
        """Tell the actor to cancel the task serving call ``cid``: shielded
        (the caller is usually being cancelled itself) and fire-and-forget
        (a reply that crosses it is dropped)."""
        if self._calls.closed.is_set():
            return
        with trio.CancelScope(shield=True):
            try:
                await self.channel.send(CancelCall(cid))
            except _GONE:
                pass

    async def _next(self, replies: Inbox[Reply]) -> Reply:
        """The next reply of a call; :class:`ActorFailure` if the child went away."""
        try:
            return await replies.get()
        except trio.EndOfChannel:
            raise await self._gone_error() from None

    async def _send_call(self, call: Call | OpenContext) -> None:
        by = self._child.cancelled_by
        if by is not None:
            raise ActorCancelled(self.name, by, self._child.exit_status)
        if self._calls.closed.is_set():
            raise await self._gone_error()
        try:
            await self.channel.send(call)
        except _GONE:
            raise await self._gone_error() from None

    @asynccontextmanager
    async def _open_stream_call(
        self, fn: Callable[..., object], kwargs: dict[str, Any], *, window: int, limit: int | None,
    ) -> AsyncIterator[tuple[int, Inbox[Reply]]]:
        ref = func_ref(fn)
        cid, replies = self._calls.open(limit=limit, label='.'.join(ref))
        try:
            await self._send_call(Call(cid, *ref, kwargs, True, window))
            yield cid, replies
        finally:
            self._calls.forget(cid)


def _describe_loop() -> str:
    """The running ``trio.run()``, as a user can tell it apart: its thread and
    its trio token."""
    thread = threading.current_thread().name
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        return f'none: thread {thread!r} is outside trio.run()'
    return f'in thread {thread!r}, TrioToken at {id(token):#x}'


class PendingCall:
    """A call sent by :meth:`Portal.submit`, whose result is still to come."""

    def __init__(
        self, portal: Portal, cid: int, replies: Inbox[Reply],
        hint: Any = None, name: str = '?',
    ) -> None:
        self._portal = portal
        self._cid = cid
        self._replies = replies
        self._hint = hint
        self._name = name

    async def result(self) -> Any:
        """The call's return value; raises :class:`RemoteActorError` for a
        remote exception and :class:`ActorFailure` if the actor went away.

        Cancelling the caller while it waits here cancels the call in the
        actor too (a shielded :class:`CancelCall`); the actor carries on.
        """
        try:
            try:
                reply = await self._replies.get()
            except trio.EndOfChannel:
                raise await self._portal._gone_error() from None
            except BaseException:
                await self._portal._cancel_remote(self._cid)
                raise
            return convert(_unwrap(reply), self._hint, f'the result of {self._name}')
        finally:
            self._portal._calls.forget(self._cid)


class _GeneratorStream:
    """The source of an :meth:`Portal.open_stream_from` stream: what the
    remote async generator yields, arriving on its call's replies."""

    def __init__(
        self, portal: Portal, cid: int, replies: Inbox[Reply], *, window: int,
        item_hint: Any = None,
    ) -> None:
        self._portal = portal
        self._cid = cid
        self._replies = replies
        self._reads = CreditBatcher(window) if window else None
        self._item_hint = item_hint
        self.finished = False
        """Whether the remote generator is done (ended, failed, or gone)."""

    async def receive_item(self) -> Any:
        if self.finished:
            raise trio.EndOfChannel
        msg = await self._portal._next(self._replies)
        if isinstance(msg, Yield):
            await self._acknowledge()
            return convert(msg.value, self._item_hint, 'a stream item')
        if isinstance(msg, LocalFailure):
            raise msg.error  # not finished: leaving the block cancels the generator
        if isinstance(msg, Overrun):
            # Not finished: leaving the block cancels the remote generator.
            raise StreamOverrun(
                f'{self._portal.name}: more than {msg.limit} stream items arrived unread '
                f"(on_overrun='raise'); read faster, raise max_buffer, or use on_overrun='wait'"
            )
        self.finished = True
        if not isinstance(msg, StreamEnd):
            _unwrap(msg)
        raise trio.EndOfChannel

    async def send_item(self, value: Any) -> None:
        raise TypeError(
            'a stream from open_stream_from() only receives: for a two-way stream, open a '
            'context (portal.open_context()) and its ctx.open_stream()'
        )

    async def close_stream(self) -> None:
        pass  # leaving open_stream_from() cancels the generator if it still runs

    async def _acknowledge(self) -> None:
        """Flow control: give the producer credit for what was read."""
        n = self._reads.read_one() if self._reads is not None else 0
        if n:
            try:
                await self._portal.channel.send(Credit(self._cid, n))
            except _GONE:
                pass  # the child is gone: the stream ends with its next read


def _unwrap(msg: Reply) -> Any:
    if isinstance(msg, Return):
        return msg.value
    if isinstance(msg, LocalFailure):
        raise msg.error
    if isinstance(msg, Failed):
        raise remote_error(msg.error)
    raise RuntimeError(f'unexpected reply {type(msg).__name__}')
