"""One child actor as its parent sees it: the single owner of its lifecycle.

A :class:`ChildActor` holds the child's process handle and channel, runs
the receive loop that feeds the child's :class:`Calls`, notices the exit,
climbs the kill ladder, collects a ``run_in_actor`` result, and says how the
child ended. Its :class:`Portal` is only the RPC face, and asks it for the
rest (``ChildLink``).

The kill ladder (:meth:`ChildActor.stop`):

1. send :class:`CancelActor`; wait up to :data:`CANCEL_ACK_TIMEOUT` for the
   acknowledgement (a responsive actor answers at once);
2. if acknowledged, wait up to :data:`CANCEL_EXIT_TIMEOUT` for it to exit
   (it may be tearing down its own children);
3. if it has not exited: SIGTERM, wait up to :data:`TERMINATE_TIMEOUT`;
4. if it still has not exited: SIGKILL, and reap.

So an unresponsive child (stuck in a blocking call) is gone within
``CANCEL_ACK_TIMEOUT + TERMINATE_TIMEOUT`` seconds plus the reap.
"""
from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable
from typing import Any

import outcome
import trio

from .._exceptions import ProtocolError
from ..log import get_logger
from ..spawn import ChildExitStatus, ProcessHandle
from ..spawn._unended import exit_grace
from . import _testhooks
from ._bootspec import Uid
from ._calls import Calls
from ._channel import Channel
from ._codec import UndecodableValue
from ._errors import ActorFailure, RemoteActorError
from ._interrupts import interrupts_unwrapped
from ._msgs import CancelAck, CancelActor
from ._portal import PendingCall, Portal

log = get_logger('runtime')

CANCEL_ACK_TIMEOUT = 0.5
CANCEL_EXIT_TIMEOUT = 3.0
TERMINATE_TIMEOUT = 0.5
CHANNEL_CLOSE_GRACE = 1.0
"""Seconds the supervisor waits for a dead child's channel to end (it ends as
soon as the last copy of the child's socket closes; this only bounds a
leaked copy)."""

UNREACHABLE_GRACE = 0.5
"""Seconds a child whose channel ended (EOF) while its process still runs
gets to exit on its own (an ending actor closes its channel just before it
exits) before the kill ladder ends it: nothing can reach it any more."""

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

def _thread_name(process: ProcessHandle) -> str:
    return str(getattr(process, 'thread_name', f'of {process!r}'))


_UNREACHABLE_TEXT = (
    'closed its channel to the parent and kept running (ended through the kill ladder)'
)


# KI-protected, both: trio's Nursery.start_soon and Event.wait are not, and a
# Ctrl-C landing inside either (a task half-registered, or a finished task
# still listed as an Event's waiter) ends trio.run with TrioInternalError.
# The root's kill ladder runs here exactly when Ctrl-C comes; protected, it
# gets the interrupt at its next checkpoint instead
# (ai/conc-anal/ctrl_c_trio_internal_error_on_3_14.md).
@trio.lowlevel.enable_ki_protection
async def _first_of(*waits: Callable[[], Any]) -> None:
    with interrupts_unwrapped():
        async with trio.open_nursery() as nursery:
            for wait in waits:
                @trio.lowlevel.enable_ki_protection
                async def run(wait: Callable[[], Any] = wait) -> None:
                    await wait()
                    nursery.cancel_scope.cancel()
                nursery.start_soon(run)


class ChildActor:
    """A spawned, handshaken child: its process, channel, portal and fate.

    ``on_failure`` is told about an error that must cancel the child's
    siblings (a ``run_in_actor`` error, as soon as it arrives); an
    unexpected exit is :meth:`exit_failure` once :meth:`supervise` returns.
    A ``run_in_actor`` child has its call sent by :meth:`start_run_call`
    before anyone can see its portal.
    """

    def __init__(
        self,
        name: str,
        uid: Uid,
        process: ProcessHandle,
        channel: Channel,
        *,
        spawn_time: float,
        on_failure: Callable[[BaseException], None],
        body_done: trio.Event | None = None,
    ) -> None:
        self.name = name
        self._body_done = body_done if body_done is not None else trio.Event()
        self.process = process
        self.channel = channel
        self.calls = Calls()
        self.portal = Portal(name, uid, channel, self.calls, self, spawn_time)
        self.cancel_requested = False
        """Whether the parent asked this child to stop (its exit is expected)."""
        self.cancelled_by: str | None = None
        """Who asked it to stop while it was still answering (its channel
        open): 'this caller' or 'its nursery'; None otherwise."""
        self.acked = False
        """Whether the child acknowledged the graceful cancel."""
        self.done = trio.Event()
        """Set once the child is gone and its channel closed."""
        self.protocol_error: ProtocolError | None = None
        """Why the child was killed for what it sent, if it was."""
        self.abandoned: str | None = None
        """Set (to what held it) when the child runs in this process and did
        not end within the grace after the ladder's last step: nothing can
        end a thread, so the nursery stops waiting for it (``spawn._unended``)."""
        self._abandoned = trio.Event()
        self.unreachable = False
        """Whether its channel ended while it kept running (user code closed
        the socket), so that the kill ladder had to end it."""
        self._forced: set[int] = set()
        """The signals the kill ladder sent it (SIGTERM, SIGKILL)."""
        self._run_call: PendingCall | None = None
        self._on_failure = on_failure
        self._cancel_ack = trio.Event()
        self._exited = trio.Event()
        self._stopping = False
        self._result: outcome.Outcome[Any] | None = None
        self._result_ready = trio.Event()
        describe_holding = getattr(process, 'describe_holding', None)
        if describe_holding is not None:  # an in-process actor
            describe_holding(self._holding_text)

    def __repr__(self) -> str:
        return f'<ChildActor {self.name} pid={self.pid}>'

    # -- ChildLink, for the portal ----------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_status(self) -> ChildExitStatus | None:
        return self.process.exit_status

    async def wait_exited(self) -> None:
        await self._exited.wait()

    def gone_reason(self) -> str:
        if self.protocol_error is not None:
            return self.protocol_failure_text()
        if self._ended_unreachable():
            return f'{_UNREACHABLE_TEXT} while a call was pending'
        return 'went away while a call was pending'

    async def result(self) -> Any:
        if self._run_call is None:
            raise RuntimeError(
                f'{self.portal!r} was started with start_actor(): it has no result to wait '
                f'for; use portal.run()'
            )
        await self._result_ready.wait()
        assert self._result is not None
        return self._result.unwrap()

    def _note_cancel(self, by: str) -> None:
        if not self.cancel_requested and not self.calls.closed.is_set():
            self.cancelled_by = by
        self.cancel_requested = True

    # -- supervision --------------------------------------------------------------

    async def start_run_call(self, fn: Callable[..., object], kwargs: dict[str, Any]) -> None:
        """Send the ``run_in_actor`` call; :meth:`supervise` collects its result."""
        self._run_call = await self.portal.submit(fn, **kwargs)

    async def supervise(self) -> None:
        """Run until the child is gone: route its messages, notice its exit,
        collect its ``run_in_actor`` result.

        Shielded: this is what notices the child's messages (its cancel ack,
        its result) and its exit, so it must keep running while the
        surrounding scope is cancelled and the kill ladder runs. It ends
        because the child ends: every cancellation path of a nursery calls
        :meth:`stop`.
        """
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive_loop)
                nursery.start_soon(self._end_if_unreachable)
                if self._run_call is not None:
                    nursery.start_soon(self._collect_result, self._run_call)
                await _first_of(self.process.wait, self._abandoned.wait)
                if not self._abandoned.is_set():
                    self._exited.set()
                log.debug('%s exited: %s', self.name, self.exit_status)
                with trio.move_on_after(CHANNEL_CLOSE_GRACE):
                    await self.calls.closed.wait()
                nursery.cancel_scope.cancel()
            with trio.move_on_after(CHANNEL_CLOSE_GRACE):
                await self.channel.aclose()
        self.done.set()

    def exit_failure(self) -> ActorFailure | None:
        """After :meth:`supervise`: the error an exit nobody asked for is."""
        if self.abandoned is not None:
            return ActorFailure(self.name, self.abandoned, None, stop_requested=True)
        if self.protocol_error is not None:
            return ActorFailure(self.name, self.protocol_failure_text(), self.exit_status)
        if self._ended_unreachable():
            return ActorFailure(self.name, _UNREACHABLE_TEXT, self.exit_status)
        if self.unreachable:
            # Judged unreachable (no exit within the grace after its EOF), yet
            # it ended on its own before the ladder's signals did: only slow.
            return ActorFailure(self.name, 'exited unexpectedly', self.exit_status)
        if self.cancel_requested or self._result is not None:
            return None
        return ActorFailure(self.name, 'exited unexpectedly', self.exit_status)

    def _ended_unreachable(self) -> bool:
        """Whether the kill ladder ended a child that kept running after its
        channel closed: judged unreachable, and its exit is one of the
        ladder's signals (a death by it, or a host's ``128 + signum``), not
        an exit of its own that merely came late (a loaded machine)."""
        if not self.unreachable:
            return False
        status = self.exit_status
        if status is None:
            return True
        by_signal = -status.returncode if status.returncode < 0 else status.returncode - 128
        return by_signal in self._forced

    def _force(self, sig: signal.Signals) -> None:
        self._forced.add(int(sig))
        if sig == signal.SIGTERM:
            self.process.terminate()
        else:
            self.process.kill()

    def protocol_failure_text(self) -> str:
        return f'was killed: it sent what the protocol does not allow ({self.protocol_error})'


    async def _receive_loop(self) -> None:
        try:
            while True:
                try:
                    msg = await self.channel.recv()
                except UndecodableValue as exc:
                    if exc.kind in ('Call', 'OpenContext'):
                        raise ProtocolError(f'it sent a {exc.kind}, which only a parent sends') from exc
                    self.calls.fail_undecodable(exc, f'actor {self.name!r}')
                    continue
                except trio.EndOfChannel:
                    break
                if isinstance(msg, CancelAck):
                    if not self.cancel_requested:
                        # Unasked: another actor cancelled it (a portal found
                        # by name), and it says so before it exits.
                        self._note_cancel('another actor')
                    self._cancel_ack.set()
                else:
                    self.calls.deliver(msg)
        except trio.BrokenResourceError:
            pass
        except ProtocolError as exc:
            # Nothing it sends can be trusted any more (not even a cancel
            # ack): it is killed, and its calls and its nursery learn why.
            log.error('%s broke the protocol, killing it: %s', self.name, exc)
            self.protocol_error = exc
            self.process.kill()
        finally:
            self.calls.close()

    async def _end_if_unreachable(self) -> None:
        """A channel that ended while the process runs on (its socket closed
        by user code: EOF here, yet the actor is busy and never notices) means
        nothing can reach the child any more: end it with the kill ladder."""
        await self.calls.closed.wait()
        if not self._exited.is_set() and not self.cancel_requested:
            with trio.move_on_after(_testhooks.seconds('parent_unreachable_grace', UNREACHABLE_GRACE)):
                await self._exited.wait()
        if self._exited.is_set() or self.cancel_requested:
            return
        self.unreachable = True
        log.warning('%s closed its channel and keeps running: ending it', self.name)
        await self.stop(by='its parent, its channel having closed')

    async def _collect_result(self, call: PendingCall) -> None:
        try:
            self._result = outcome.Value(await call.result())
        except (RemoteActorError, ActorFailure) as exc:
            self._result = outcome.Error(exc)
            # A remote error is a real result even if we were already
            # cancelling the child (its reply may have crossed our cancel
            # request); only the "went away" of a child we cancelled
            # ourselves is not a failure.
            if not (self.cancel_requested and isinstance(exc, ActorFailure)):
                self._on_failure(exc)
        else:
            # Done, but it lives on (answering its peers: another actor may
            # still be calling it) until its nursery's block ends, as in
            # tractor; an error ends it (and, above, its siblings) at once.
            self._result_ready.set()
            await self._body_done.wait()
        self._result_ready.set()
        await self.stop(by='its nursery, once its run_in_actor call had returned')

    # -- the kill ladder ------------------------------------------------------------

    async def stop(self, by: str = 'its nursery') -> bool:
        """The kill ladder (module docstring); idempotent, shielded. Returns
        whether the actor acknowledged the graceful cancel. ``by`` is who
        asked, for the error of calls made after (:class:`ActorCancelled`)."""
        self._note_cancel(by)
        with trio.CancelScope(shield=True):
            if not self._stopping:
                self._stopping = True
                try:
                    if not self._exited.is_set():
                        await self._climb_ladder()
                except BaseException:
                    # Interrupted (Ctrl-C lands even in shielded code): the
                    # next stop() climbs again instead of waiting for an
                    # exit that nobody is still arranging.
                    self._stopping = False
                    raise
            await _first_of(self._exited.wait, self._abandoned.wait)
        return self.acked

    def _holding_text(self) -> str | None:
        calls = self.calls.unanswered()
        if calls:
            return f'is blocked in its call {", ".join(calls)} (sent, never answered)'
        left_threads = getattr(self.process, 'left_threads', None)
        left = left_threads() if left_threads is not None else None
        if left:
            return f'its code left non-daemon threads {left} running, which its subinterpreter waits for'
        return None

    async def _give_up_unless_exited(self) -> None:
        """An in-process actor asked to stop by every step of the ladder gets
        :func:`exit_grace` seconds more; then it is given up: its thread runs
        on, and the process's exit is bounded instead (``spawn._unended``)."""
        grace = exit_grace()
        if math.isinf(grace):
            return  # opted out: wait for the call to return, however long
        with trio.move_on_after(grace):
            await self._exited.wait()
        if self._exited.is_set():
            return
        holding = self._holding_text() or 'did not end (no call of ours is pending)'
        self.abandoned = (
            f'could not be ended: it runs in this process (thread '
            f'{_thread_name(self.process)!r}), where nothing ends a thread, and {holding}; '
            f'given up after the kill ladder and {grace:g} s more (at exit, the process '
            f'ends with os._exit if it still runs then)'
        )
        log.error('actor %r %s', self.name, self.abandoned)
        self._abandoned.set()

    async def _climb_ladder(self) -> None:
        log.debug('cancelling %s (pid %d)', self.name, self.pid)
        try:
            await self.channel.send(CancelActor())
        except _GONE:
            pass
        with trio.move_on_after(CANCEL_ACK_TIMEOUT):
            await _first_of(self._cancel_ack.wait, self._exited.wait)
        self.acked = self._cancel_ack.is_set()
        log.debug('%s acked=%s exited=%s', self.name, self.acked, self._exited.is_set())
        if self.acked:
            with trio.move_on_after(CANCEL_EXIT_TIMEOUT):
                await self._exited.wait()
        if not self._exited.is_set():
            log.info('%s did not exit after a graceful cancel: SIGTERM', self.name)
            self._force(signal.SIGTERM)
            with trio.move_on_after(TERMINATE_TIMEOUT):
                await self._exited.wait()
        if not self._exited.is_set():
            if self.process.pid == os.getpid():  # an in-process actor: a thread, unkillable
                log.warning(
                    '%s did not exit after a terminate request; it runs in this process, where '
                    'nothing ends a blocking call: waiting %g s more for it', self.name,
                    exit_grace(),
                )
                self._force(signal.SIGKILL)
                await self._give_up_unless_exited()
            else:
                log.warning('%s did not exit after SIGTERM: SIGKILL', self.name)
                self._force(signal.SIGKILL)
