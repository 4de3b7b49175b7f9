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
from contextlib import aclosing

import trio

from .._exceptions import ProtocolError, TractorSubintError
from ..log import get_logger
from ..spawn import SpawnTree, cancel_on_forwarded_signal, current_tree, describe_cancel_byte, open_tree
from ._bootspec import BootSpec, Uid
from ._channel import Channel
from ._codec import UndecodableValue
from ._errors import ValueDecodeError, box_error
from ._msgs import Call, CancelAck, CancelActor, CancelCall, Credit, Failed, Return, StreamEnd, Yield
from ._targets import check_resolved, resolve

log = get_logger('runtime')

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


def _is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is trio's cancellation (alone or grouped), which is the
    runtime's business, not the call's answer."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return isinstance(exc, trio.Cancelled)


class ChannelLost(TractorSubintError, RuntimeError):
    """This actor's end of its channel was closed under it (by user code):
    it cannot answer its parent any more, so it ends."""


class _StreamCredit:
    """How many more items a stream may send before the parent's next
    :class:`Credit`: the producer waits at zero (flow control)."""

    def __init__(self, window: int) -> None:
        self.available = window
        self._granted = trio.Event()

    async def take(self) -> None:
        while self.available <= 0:
            await self._granted.wait()
            self._granted = trio.Event()
        self.available -= 1

    def grant(self, n: int) -> None:
        self.available += n
        self._granted.set()


class Actor:
    """One actor of the tree. :func:`current_actor` returns the running one."""

    def __init__(self, name: str, uid: Uid, spec: BootSpec | None = None) -> None:
        self.name = name
        self.uid = uid
        self.spec = spec
        self._owned_tree: SpawnTree | None = None
        self._calls: dict[int, trio.CancelScope] = {}
        self._credits: dict[int, _StreamCredit] = {}
        self.open_nurseries = 0
        """Actor nurseries open in this actor (the root actor ends with the last)."""
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
    def new_root(cls) -> Actor:
        """The implicit root of a new tree; it opens the tree's spawn
        resources (:func:`tractor_subint.spawn.open_tree`) unless this
        process already belongs to a tree."""
        root = cls('root', ('root', uuid.uuid4().hex))
        if current_tree() is None:
            root._owned_tree = open_tree()
        return root

    @property
    def is_root(self) -> bool:
        return self.spec is None

    def __repr__(self) -> str:
        return f'<Actor {self.name}[{self.uid[1][:8]}] pid={os.getpid()}>'

    async def aclose(self) -> None:
        """Release what this actor's process keeps for spawning (a warm
        pool; the root also the tree's forkserver), even when cancelled."""
        owned, self._owned_tree = self._owned_tree, None
        tree = owned or (None if self.is_root else current_tree())
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
                elif isinstance(msg, Credit):
                    credit = self._credits.get(msg.cid)
                    if credit is not None:
                        credit.grant(msg.n)
                elif isinstance(msg, CancelCall):
                    scope = self._calls.get(msg.cid)
                    if scope is not None:
                        scope.cancel()
                elif isinstance(msg, CancelActor):
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

    async def _refuse_undecodable(self, chan: Channel, exc: UndecodableValue) -> None:
        """A call whose arguments do not decode here fails alone (the frame
        was read whole: the channel is in step)."""
        if exc.kind != 'Call':
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
                fn = resolve(self.spec, msg.module, msg.qualname)
                check_resolved(fn, f'{msg.module}.{msg.qualname}', stream=msg.stream)
                if msg.stream:
                    await self._stream_results(chan, msg, fn)
                else:
                    result = fn(**msg.kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                    await chan.send(Return(msg.cid, result))
            except _GONE as exc:
                self._lose_channel(exc)
            except Exception as exc:
                await self._send_failure(chan, msg.cid, exc)
            except BaseException as exc:
                if _is_cancellation(exc):
                    raise
                await self._end_by(chan, msg, exc)
            finally:
                self._calls.pop(msg.cid, None)

    async def _end_by(self, chan: Channel, msg: Call, exc: BaseException) -> None:
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
        credit = _StreamCredit(msg.window) if msg.window > 0 else None
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
