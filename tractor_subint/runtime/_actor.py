"""An actor: a name, an identity, and (in a child) the loop serving its parent.

The child side of the protocol lives here: :meth:`Actor.serve` answers
:class:`Call` messages by running the named function as a trio task, and
ends on :class:`CancelActor`, on the parent's hang-up (EOF), or on a byte on
the host's cancel fd (a forwarded SIGINT/SIGTERM or the lifeline).
"""
from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager

import trio

from .._exceptions import ProtocolError, TractorSubintError
from ..log import get_logger
from ..spawn import SpawnTree, cancel_on_forwarded_signal, current_tree, describe_cancel_byte, open_tree
from ._bootspec import Aid, BootSpec, Uid
from ._channel import Channel
from ._codec import UndecodableValue
from ._context import Context, require_context_function
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
from ._streaming import SendCredit
from ._targets import check_resolved, check_target, resolve

log = get_logger('runtime')

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

CONTEXT_STOP_NOTICE = 0.2
"""Seconds a context task of a stopping actor spends telling its caller."""


def _is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's cancellation (alone or grouped), which is the
    runtime's business, not the call's answer."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class ChannelLost(TractorSubintError, RuntimeError):
    """This actor's end of its channel was closed under it (by user code):
    it cannot answer its parent any more, so it ends."""


class Actor:
    """One actor of the tree. :func:`current_actor` returns the running one."""

    def __init__(self, name: str, uid: Uid, spec: BootSpec | None = None) -> None:
        self.name = name
        self.uid = uid
        self.spec = spec
        self._owned_tree: SpawnTree | None = None
        self._calls: dict[int, trio.CancelScope] = {}
        self._credits: dict[int, SendCredit] = {}
        self._contexts: dict[int, Context] = {}
        self._stopped_by: Channel | None = None
        """The channel whose peer asked this actor to stop, if one did."""
        self.debug_mode = False
        """Whether this actor's tree runs in debug mode (README, "Debug mode")."""
        self.holders = 0
        """(Root) The blocks holding this root actor: ``open_root_actor`` and
        nurseries; the last one to end ends it."""
        self.cancel_reason: str | None = None
        """Why this actor stopped serving, once it has."""
        self._serve_scope = trio.CancelScope()
        self._channel_lost: BaseException | None = None
        self._fatal: BaseException | None = None
        """A non-``Exception`` raised by a call (``SystemExit``, ...): it ends
        this actor, once the call has been answered with it."""
        self.parent_channel: Channel | None = None
        """The channel to the parent, while this (non-root) actor serves."""

    @classmethod
    def new_root(cls, name: str = 'root') -> Actor:
        """The root of a new tree; it opens the tree's spawn resources
        (:func:`tractor_subint.spawn.open_tree`) unless this process already
        belongs to a tree."""
        root = cls(name, (name, uuid.uuid4().hex))
        if current_tree() is None:
            root._owned_tree = open_tree()
        return root

    @property
    def is_root(self) -> bool:
        return self.spec is None

    @property
    def aid(self) -> Aid:
        """This actor's identity: name, uuid and pid."""
        return Aid(self.name, self.uid[1], os.getpid())

    def __repr__(self) -> str:
        return f'<Actor {self.name}[{self.uid[1][:8]}] pid={os.getpid()}>'

    async def aclose(self) -> None:
        """Release what this actor keeps for spawning, even when cancelled:
        the root, the tree's forkserver; a child, also its process's warm
        pools (the process ends with the actor). A root's process keeps its
        pools for its next tree (they close themselves when idle, and at
        exit)."""
        owned, self._owned_tree = self._owned_tree, None
        tree = owned or (None if self.is_root else current_tree())
        if not self.is_root:
            # Imported here: an actor whose process never kept a pool loads none of it.
            from ..spawn import aclose_local_pools

            await aclose_local_pools()
        if tree is not None:
            await tree.aclose()

    # -- child side ---------------------------------------------------------

    async def serve(self, chan: Channel, cancel_fd: int) -> None:
        """Answer the parent until cancelled or the parent is gone.

        Raises :class:`ChannelLost` when answering failed because this
        actor's end of the channel broke under it (user code closed the
        socket): the actor cannot serve any more, and its exit must say so.
        """
        self.parent_channel = chan
        async with cancel_on_forwarded_signal(cancel_fd) as forwarded, trio.open_nursery() as rpc:
            with trio.CancelScope() as self._serve_scope:
                self.cancel_reason = await self._message_loop(chan, rpc)
            log.debug('stopping: %s', self.cancel_reason)
            rpc.cancel_scope.cancel()
        if forwarded.signum is not None:
            self.cancel_reason = describe_cancel_byte(forwarded.signum)
            log.debug('stopping: %s', self.cancel_reason)
        if self._fatal is not None:
            raise self._fatal  # as itself: the actor's exit names it
        if self._channel_lost is not None:
            raise ChannelLost(
                f'actor {self.name!r} lost its channel to the parent while answering: '
                f'{self._channel_lost!r}'
            ) from self._channel_lost

    def _lose_channel(self, error: BaseException) -> None:
        """Sending failed: the parent is gone or our socket was closed under
        us. Either way nothing more can be answered: stop serving (the
        message loop may never see an end of its own)."""
        if isinstance(error, trio.ClosedResourceError) and self._channel_lost is None:
            self._channel_lost = error  # closed here, not by the parent
        self.cancel_reason = 'lost its channel to the parent'
        self._serve_scope.cancel()

    async def _message_loop(self, chan: Channel, rpc: trio.Nursery) -> str:
        try:
            while True:
                try:
                    msg = await chan.recv()
                except UndecodableValue as exc:
                    await self._refuse_undecodable(chan, exc)
                    continue
                except trio.EndOfChannel:
                    break
                if isinstance(msg, Call):
                    rpc.start_soon(self._run_call, chan, msg, name=f'rpc:{msg.qualname}')
                elif isinstance(msg, OpenContext):
                    ctx = Context(
                        side='child', channel=chan, own_uid=self.uid, peer_uid=msg.caller_uid,
                        task=f'{msg.module}.{msg.qualname}', window=msg.window,
                    )
                    ctx.cid = msg.cid
                    self._contexts[msg.cid] = ctx
                    rpc.start_soon(self._run_context, chan, msg, ctx, name=f'ctx:{msg.qualname}')
                elif isinstance(msg, (Credit, CancelCall, Yield, StreamEnd)):
                    self._route(msg)
                elif isinstance(msg, CancelActor):
                    self._stopped_by = chan
                    try:
                        await chan.send(CancelAck())
                    except _GONE:
                        pass
                    return 'cancelled by parent'
        except trio.BrokenResourceError:
            pass
        except ProtocolError as exc:
            log.error('the parent sent what this actor cannot read: %s', exc)
            return f'the parent broke the protocol ({exc})'
        return 'parent hung up'

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

    async def _refuse_undecodable(self, chan: Channel, exc: UndecodableValue) -> None:
        """A call whose arguments do not decode here fails alone (the frame
        was read whole: the channel is in step); so does a context's stream
        item (its next read raises)."""
        if exc.kind == 'Yield' and exc.cid in self._contexts:
            self._contexts[exc.cid].fail(ValueDecodeError(
                f'a stream item sent to actor {self.name!r} cannot be decoded here: '
                f'{type(exc.cause).__name__}: {exc.cause}'
            ), exc.kind)
            return
        if exc.kind not in ('Call', 'OpenContext'):
            raise ProtocolError(f'the parent sent a {exc.kind}, which only an actor sends')
        error = ValueDecodeError(
            f'the arguments of this call cannot be decoded in actor {self.name!r}: '
            f'{type(exc.cause).__name__}: {exc.cause}'
        )
        await self._send_failure(chan, exc.cid, error)

    async def _run_call(self, chan: Channel, msg: Call) -> None:
        assert self.spec is not None
        with trio.CancelScope() as scope:
            self._calls[msg.cid] = scope
            try:
                async with self._answering(chan, msg):
                    fn = resolve(self.spec, msg.module, msg.qualname)
                    check_resolved(fn, f'{msg.module}.{msg.qualname}', stream=msg.stream)
                    if msg.stream:
                        await self._stream_results(chan, msg, fn)
                    else:
                        result = fn(**msg.kwargs)
                        if inspect.isawaitable(result):
                            result = await result
                        await chan.send(Return(msg.cid, result))
            finally:
                self._calls.pop(msg.cid, None)

    async def _run_context(self, chan: Channel, msg: OpenContext, ctx: Context) -> None:
        """Run the ``@context`` function of ``msg`` linked to its caller: its
        result or error goes back as the context's last message; cancelled
        on request, it answers ``ContextCancelled`` (naming who asked)."""
        assert self.spec is not None

        async def tell_caller_we_stop() -> None:
            canceller = ctx.peer_uid if self._stopped_by is chan else self.uid
            with trio.move_on_after(CONTEXT_STOP_NOTICE, shield=True):
                try:
                    await chan.send(Failed(msg.cid, context_cancelled_info(self.uid, ctx.task, canceller)))
                except (*_GONE, OSError):
                    pass

        try:
            async with self._answering(chan, msg, on_stop=tell_caller_we_stop):
                fn = resolve(self.spec, msg.module, msg.qualname)
                check_target(fn, stream=False)
                meta = require_context_function(fn, ctx.task)
                ctx.pld_spec = meta.pld_spec
                kwargs = dict(msg.kwargs)
                kwargs[meta.ctx_param] = ctx
                with ctx._scope:
                    result = await fn(**kwargs)  # type: ignore[misc]
                if ctx._scope.cancelled_caught:
                    canceller = ctx._cancel_requester or self.uid
                    await chan.send(Failed(msg.cid, context_cancelled_info(self.uid, ctx.task, canceller)))
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
        self, chan: Channel, msg: Call | OpenContext,
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Around a call's task: an ``Exception`` is its answer; a lost
        channel ends the actor; a ``BaseException`` ends it after answering;
        trio's cancellation (this actor stopping) goes on, after ``on_stop``."""
        try:
            yield
        except _GONE as exc:
            self._lose_channel(exc)
        except Exception as exc:
            await self._send_failure(chan, msg.cid, exc)
        except BaseException as exc:
            if not _is_cancellation(exc):
                await self._end_by(chan, msg, exc)
                return
            if on_stop is not None:
                await on_stop()
            raise

    async def _end_by(self, chan: Channel, msg: Call | OpenContext, exc: BaseException) -> None:
        """A call raised a ``BaseException`` that is not an ``Exception``
        (``SystemExit``, ``KeyboardInterrupt``, ...): as in a process, it
        ends this actor. The caller hears it first, as the call's error, and
        the actor then exits with it (so its exit names it too)."""
        exc.add_note(
            f'(a {type(exc).__name__} raised by a call ends its actor: '
            f'actor {self.name!r} exited; an Exception would fail only the call)'
        )
        log.error('%s.%s raised %r: the actor ends', msg.module, msg.qualname, exc)
        with trio.CancelScope(shield=True):
            await self._send_failure(chan, msg.cid, exc)
        if self._fatal is None:
            self._fatal = exc
        self.cancel_reason = f'a call raised {type(exc).__name__}'
        self._serve_scope.cancel()

    async def _send_failure(self, chan: Channel, cid: int, exc: BaseException) -> None:
        """Answer call ``cid`` with ``exc``. If the box cannot be sent with the
        error's ``args`` and attributes (the codec refuses one), it goes
        without them; if even that fails, an error saying so goes instead: a
        call never goes unanswered while the channel works."""
        try:
            try:
                await chan.send(Failed(cid, box_error(exc, self.uid)))
                return
            except _GONE:
                raise
            except Exception:
                pass
            try:
                await chan.send(Failed(cid, box_error(exc, self.uid, with_data=False)))
            except _GONE:
                raise
            except Exception as send_error:
                stand_in = RuntimeError(
                    f'the {type(exc).__name__} raised by this call could not be sent back: '
                    f'{type(send_error).__name__}: {send_error}'
                )
                await chan.send(Failed(cid, box_error(stand_in, self.uid)))
        except _GONE as gone:
            self._lose_channel(gone)

    async def _stream_results(self, chan: Channel, msg: Call, fn: object) -> None:
        agen = fn(**msg.kwargs)  # type: ignore[operator]
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
                        await credit.take()  # the parent's buffer is full: wait
                    await chan.send(Yield(msg.cid, value))
            await chan.send(StreamEnd(msg.cid))
        finally:
            self._credits.pop(msg.cid, None)
