"""Answering one channel: the calls, streams and contexts that arrive on it.

An actor answers its parent's channel for as long as it lives, and each
channel a peer opened to it (``find_actor``, ``wait_for_actor``) for as long
as that peer keeps it. A :class:`ChannelServer` runs the message loop of one
such channel: a :class:`Call` or :class:`OpenContext` becomes a task, the
messages about running ones (credit, cancel requests, a context's stream
items) go to them, and a :class:`CancelActor` stops the whole actor. What
ends the actor is the :class:`~._actor.Actor`'s business; a peer's channel
that ends or breaks ends only what ran for it.
"""
from __future__ import annotations

import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from typing import TYPE_CHECKING

import trio

from .._exceptions import ProtocolError
from ..log import get_logger
from ._channel import Channel
from ._codec import UndecodableValue
from ._context import Context, require_context_function
from ._debug import crash_repl
from ._errors import ValueDecodeError, box_error, context_cancelled_info
from ._msgs import (
    Call,
    CancelAck,
    CancelActor,
    CancelCall,
    Credit,
    Failed,
    OpenContext,
    Return,
    StreamEnd,
    Yield,
)
from ._payloads import convert_kwargs
from ._streaming import SendCredit
from ._targets import check_resolved, check_target, resolve, returns_directly

if TYPE_CHECKING:
    from ._actor import Actor

log = get_logger('runtime')

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

_NEVER_AWAITABLE = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict})
"""Result types :func:`inspect.isawaitable` need not be asked about (it
costs as much as the rest of an inline answer's own work)."""

CONTEXT_STOP_NOTICE = 0.2
"""Seconds a context task of a stopping actor spends telling its caller."""


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's cancellation (alone or grouped), which is the
    runtime's business, not the call's answer."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class ChannelServer:
    """Answers the calls arriving on ``chan`` for ``actor``: its parent's
    channel (``parent=True``) or one a peer opened to it."""

    def __init__(self, actor: Actor, chan: Channel, *, parent: bool) -> None:
        self.actor = actor
        self.chan = chan
        self.parent = parent
        self._calls: dict[int, trio.CancelScope] = {}
        self._credits: dict[int, SendCredit] = {}
        self._contexts: dict[int, Context] = {}
        self.scope = trio.CancelScope()
        """Cancelled to end this channel's message loop and what runs for it."""

    @property
    def who(self) -> str:
        if self.parent:
            return 'parent'
        aid = self.chan.aid
        return f'actor {aid.name!r}' if aid is not None else 'a peer'

    async def serve(self) -> str:
        """Answer until the channel ends (or :attr:`scope` is cancelled);
        return why it ended. Tasks started for the channel end with it."""
        async with trio.open_nursery() as tasks:
            with self.scope:
                reason = await self._message_loop(tasks)
            tasks.cancel_scope.cancel()
        return reason if not self.scope.cancelled_caught else f'{self.who} stopped being answered'

    async def _message_loop(self, tasks: trio.Nursery) -> str:
        chan = self.chan
        try:
            while True:
                try:
                    msg = await chan.recv()
                except UndecodableValue as exc:
                    await self._refuse_undecodable(exc)
                    continue
                except trio.EndOfChannel:
                    break
                if isinstance(msg, Call):
                    if not await self._answer_inline(msg, tasks):
                        tasks.start_soon(self._run_call, msg, name=f'rpc:{msg.qualname}')
                elif isinstance(msg, OpenContext):
                    ctx = Context(
                        side='child', channel=chan, own_uid=self.actor.uid, peer_uid=msg.caller_uid,
                        task=f'{msg.module}.{msg.qualname}', window=msg.window,
                    )
                    ctx.cid = msg.cid
                    self._contexts[msg.cid] = ctx
                    tasks.start_soon(self._run_context, msg, ctx, name=f'ctx:{msg.qualname}')
                elif isinstance(msg, (Credit, CancelCall, Yield, StreamEnd)):
                    self._route(msg)
                elif isinstance(msg, CancelActor):
                    try:
                        await chan.send(CancelAck())
                    except _GONE:
                        pass
                    if await self.actor.stop_requested(self):
                        return f'cancelled by {self.who}'
        except trio.BrokenResourceError:
            pass
        except ProtocolError as exc:
            log.error('%s sent what this actor cannot read: %s', self.who, exc)
            return f'{self.who} broke the protocol ({exc})'
        return f'{self.who} hung up'

    def _route(self, msg: Credit | CancelCall | Yield | StreamEnd) -> None:
        """A message about a running call or context, to where it belongs."""
        ctx = self._contexts.get(msg.cid)
        if ctx is not None:
            ctx.deliver(msg)
        elif isinstance(msg, Credit):
            credit = self._credits.get(msg.cid)
            if credit is not None:
                credit.grant(msg.n)
        elif isinstance(msg, CancelCall):
            scope = self._calls.get(msg.cid)
            if scope is not None:
                scope.cancel()

    async def _refuse_undecodable(self, exc: UndecodableValue) -> None:
        """A call whose arguments do not decode here fails alone (the frame
        was read whole: the channel is in step); so does a context's stream
        item (its next read raises)."""
        if exc.kind == 'Yield' and exc.cid in self._contexts:
            self._contexts[exc.cid].fail(ValueDecodeError(
                f'a stream item sent to actor {self.actor.name!r} cannot be decoded here: '
                f'{type(exc.cause).__name__}: {exc.cause}'
            ), exc.kind)
            return
        if exc.kind not in ('Call', 'OpenContext'):
            raise ProtocolError(f'{self.who} sent a {exc.kind}, which only an actor sends')
        error = ValueDecodeError(
            f'the arguments of this call cannot be decoded in actor {self.actor.name!r}: '
            f'{type(exc.cause).__name__}: {exc.cause}'
        )
        await self._send_failure(exc.cid, error)

    def _inline_target(self, msg: Call) -> Callable[..., object] | None:
        """The function of ``msg`` if this loop may call it itself: a plain
        (not async) function of a plain call, resolved without error. Else
        None: a task of its own runs it (and reports what went wrong)."""
        if msg.stream or self.actor.debug_mode:
            return None
        try:
            fn = resolve(self.actor.spec, msg.module, msg.qualname)
        except Exception:
            return None
        return fn if returns_directly(fn) else None

    async def _answer_inline(self, msg: Call, tasks: trio.Nursery) -> bool:
        """Answer a call of a plain function here, in the message loop: it
        would hold the thread for as long in a task of its own (nothing can
        interrupt it), and a task costs more than the call (its start and a
        trip through the scheduler; RPC round trips are mostly such costs).
        It runs in a copy of the loop's context, as a task would. If it
        returns an awaitable, a task awaits it. False: not such a call."""
        fn = self._inline_target(msg)
        if fn is None:
            return False
        try:
            kwargs = convert_kwargs(fn, msg.kwargs)
            result = contextvars.copy_context().run(fn, **kwargs)
        except Exception as exc:
            await self._send_failure(msg.cid, exc)
            return True
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ...: as in a task
            await self._end_actor_by(msg, exc)
            return True
        if type(result) not in _NEVER_AWAITABLE and inspect.isawaitable(result):
            tasks.start_soon(self._await_result, msg, result, name=f'rpc:{msg.qualname}')
            return True
        try:
            self.chan.send_nowait(Return(msg.cid, result))  # never waits on the peer
        except _GONE as exc:
            self._lose(exc)
        except Exception as exc:  # the result does not encode
            await self._send_failure(msg.cid, exc)
        return True

    async def _await_result(self, msg: Call, awaitable: Awaitable[object]) -> None:
        """The task of a plain function's call that returned an awaitable."""
        with trio.CancelScope() as scope:
            self._calls[msg.cid] = scope
            try:
                async with self._answering(msg):
                    await self.chan.send(Return(msg.cid, await awaitable))
            finally:
                self._calls.pop(msg.cid, None)

    async def _run_call(self, msg: Call) -> None:
        with trio.CancelScope() as scope:
            self._calls[msg.cid] = scope
            try:
                async with self._answering(msg):
                    fn = resolve(self.actor.spec, msg.module, msg.qualname)
                    check_resolved(fn, f'{msg.module}.{msg.qualname}', stream=msg.stream)
                    kwargs = convert_kwargs(fn, msg.kwargs)
                    if msg.stream:
                        await self._stream_results(msg, fn, kwargs)
                    else:
                        result = fn(**kwargs)
                        if inspect.isawaitable(result):
                            result = await result
                        await self.chan.send(Return(msg.cid, result))
            finally:
                self._calls.pop(msg.cid, None)

    async def _run_context(self, msg: OpenContext, ctx: Context) -> None:
        """Run the ``@context`` function of ``msg`` linked to its caller: its
        result or error goes back as the context's last message; cancelled
        on request, it answers ``ContextCancelled`` (naming who asked)."""
        actor, chan = self.actor, self.chan

        async def tell_caller_we_stop() -> None:
            canceller = ctx.peer_uid if actor.stopped_by is self else actor.uid
            with trio.move_on_after(CONTEXT_STOP_NOTICE, shield=True):
                try:
                    await chan.send(Failed(msg.cid, context_cancelled_info(actor.uid, ctx.task, canceller)))
                except (*_GONE, OSError):
                    pass

        try:
            async with self._answering(msg, on_stop=tell_caller_we_stop):
                fn = resolve(actor.spec, msg.module, msg.qualname)
                check_target(fn, stream=False)
                meta = require_context_function(fn, ctx.task)
                ctx.pld_spec = meta.pld_spec
                kwargs = dict(convert_kwargs(fn, msg.kwargs))
                kwargs[meta.ctx_param] = ctx
                with ctx._scope:
                    result = await fn(**kwargs)  # type: ignore[misc]
                if ctx._scope.cancelled_caught:
                    canceller = ctx._cancel_requester or actor.uid
                    await chan.send(Failed(msg.cid, context_cancelled_info(actor.uid, ctx.task, canceller)))
                    return
                if not ctx._started_sent:
                    raise RuntimeError(
                        f'{ctx.task} returned before it called ctx.started(): a @context function '
                        f'must call it first (its caller waits for it)'
                    )
                await chan.send(Return(msg.cid, result))
        finally:
            self._contexts.pop(msg.cid, None)

    @asynccontextmanager
    async def _answering(
        self, msg: Call | OpenContext, on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Around a call's task: an ``Exception`` is its answer; a lost
        channel ends it (the parent's: the actor too); a ``BaseException``
        ends the actor after answering; trio's cancellation (the actor or
        this channel stopping) goes on, after ``on_stop``."""
        try:
            yield
        except _GONE as exc:
            self._lose(exc)
        except Exception as exc:
            if self.actor.debug_mode:
                await crash_repl(self.actor, exc)
            await self._send_failure(msg.cid, exc)
        except BaseException as exc:
            if not is_cancellation(exc):
                await self._end_actor_by(msg, exc)
                return
            if on_stop is not None:
                await on_stop()
            raise

    def _lose(self, error: BaseException) -> None:
        """Sending failed: the other end is gone (or our socket was closed
        under us). Nothing more can be answered here."""
        if self.parent:
            self.actor.lose_parent_channel(error)
        else:
            self.scope.cancel()

    async def _end_actor_by(self, msg: Call | OpenContext, exc: BaseException) -> None:
        """A call raised a ``BaseException`` that is not an ``Exception``
        (``SystemExit``, ``KeyboardInterrupt``, ...): as in a process, it
        ends this actor. The caller hears it first, as the call's error, and
        the actor then exits with it (so its exit names it too)."""
        exc.add_note(
            f'(a {type(exc).__name__} raised by a call ends its actor: '
            f'actor {self.actor.name!r} exited; an Exception would fail only the call)'
        )
        log.error('%s.%s raised %r: the actor ends', msg.module, msg.qualname, exc)
        with trio.CancelScope(shield=True):
            await self._send_failure(msg.cid, exc)
        self.actor.end_by(exc)

    async def _send_failure(self, cid: int, exc: BaseException) -> None:
        """Answer call ``cid`` with ``exc``. If the box cannot be sent with the
        error's ``args`` and attributes (the codec refuses one), it goes
        without them; if even that fails, an error saying so goes instead: a
        call never goes unanswered while the channel works."""
        chan, uid = self.chan, self.actor.uid
        try:
            try:
                await chan.send(Failed(cid, box_error(exc, uid)))
                return
            except _GONE:
                raise
            except Exception:
                pass
            try:
                await chan.send(Failed(cid, box_error(exc, uid, with_data=False)))
            except _GONE:
                raise
            except Exception as send_error:
                stand_in = RuntimeError(
                    f'the {type(exc).__name__} raised by this call could not be sent back: '
                    f'{type(send_error).__name__}: {send_error}'
                )
                await chan.send(Failed(cid, box_error(stand_in, uid)))
        except _GONE as gone:
            self._lose(gone)

    async def _stream_results(self, msg: Call, fn: object, kwargs: dict[str, object]) -> None:
        agen = fn(**kwargs)  # type: ignore[operator]
        if not inspect.isasyncgen(agen):
            if inspect.iscoroutine(agen):
                agen.close()  # not awaited, on purpose: no "never awaited" warning
            raise TypeError(
                f'{msg.module}.{msg.qualname} is not an async generator function: '
                f'open_stream_from() needs one'
            )
        credit = SendCredit(msg.window) if msg.window > 0 else None
        if credit is not None:
            self._credits[msg.cid] = credit
        try:
            async with aclosing(agen):
                async for value in agen:
                    if credit is not None:
                        await credit.take()  # the caller's buffer is full: wait
                    await self.chan.post(Yield(msg.cid, value))
            await self.chan.send(StreamEnd(msg.cid))
        finally:
            self._credits.pop(msg.cid, None)
