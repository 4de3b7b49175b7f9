"""Actor nurseries: spawn children, supervise them one-cancels-all, and make
sure every one of them is gone when the nursery block ends.

The kill ladder for one child (:meth:`ChildActor.stop`):

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

import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ..spawn._contract import ProcessHandle, SpawnRequest
from ..spawn._main_thread_forkserver import can_fork_here
from ..spawn._reap import ChildExitStatus, status_from_returncode
from ..spawn._spawn import SpawnMethodKey, current_start_method, get_spawn_fn, validate_start_method
from . import _testhooks
from ._actor import Actor
from ._boot import ENTRY
from ._channel import Channel
from ._codec import encode_boot_spec, get_codec
from ._errors import ActorFailure, RemoteActorError
from ._log import log
from ._msgs import BootFailed, BootSpec, CancelActor, Ready
from ._portal import Portal
from ._state import _current_actor_or_none, set_current_actor
from ._targets import func_ref, main_info

CANCEL_ACK_TIMEOUT = 0.5
CANCEL_EXIT_TIMEOUT = 3.0
TERMINATE_TIMEOUT = 0.5
BOOT_REAP_TIMEOUT = 3.0
"""How long a child that failed its boot gets to exit before it is killed."""

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


def exit_status_of(process: ProcessHandle) -> ChildExitStatus | None:
    status = getattr(process, 'exit_status', None)
    if status is not None:
        return status
    if process.returncode is None:
        return None
    return status_from_returncode(process.pid, process.returncode)


async def _first_of(*waits: Callable[[], Any]) -> None:
    async with trio.open_nursery() as nursery:
        for wait in waits:
            async def run(wait: Callable[[], Any] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()
            nursery.start_soon(run)


class ChildActor:
    """The nursery's record of one child: process, portal, and how it ends."""

    def __init__(self, portal: Portal, *, run_in_actor: bool) -> None:
        self.portal = portal
        self.process = portal.process
        self.run_in_actor = run_in_actor
        self.cancel_requested = False
        self.acked = False
        self.process_exited = trio.Event()
        self.done = trio.Event()
        self._stopping = False
        portal._child = self

    @property
    def name(self) -> str:
        return self.portal.name

    @property
    def exit_status(self) -> ChildExitStatus | None:
        return exit_status_of(self.process)

    async def stop(self) -> bool:
        """The kill ladder (module docstring); idempotent, shielded. Returns
        whether the actor acknowledged the graceful cancel."""
        self.cancel_requested = True
        with trio.CancelScope(shield=True):
            if self._stopping:
                await self.process_exited.wait()
                return self.acked
            self._stopping = True
            if not self.process_exited.is_set():
                await self._climb_ladder()
            await self.process_exited.wait()
        return self.acked

    async def _climb_ladder(self) -> None:
        log.debug('cancelling %s (pid %d)', self.name, self.process.pid)
        try:
            await self.portal.channel.send(CancelActor())
        except _GONE:
            pass
        with trio.move_on_after(CANCEL_ACK_TIMEOUT):
            await _first_of(self.portal._cancel_ack.wait, self.process_exited.wait)
        self.acked = self.portal._cancel_ack.is_set()
        log.debug('%s acked=%s exited=%s', self.name, self.acked, self.process_exited.is_set())
        if self.acked:
            with trio.move_on_after(CANCEL_EXIT_TIMEOUT):
                await self.process_exited.wait()
        if not self.process_exited.is_set():
            log.info('%s did not exit after a graceful cancel: SIGTERM', self.name)
            self.process.terminate()
            with trio.move_on_after(TERMINATE_TIMEOUT):
                await self.process_exited.wait()
        if not self.process_exited.is_set():
            log.warning('%s did not exit after SIGTERM: SIGKILL', self.name)
            self.process.kill()


class ActorNursery:
    """Spawns and supervises child actors; see :func:`open_nursery`."""

    def __init__(self, actor: Actor, method: SpawnMethodKey, task_nursery: trio.Nursery) -> None:
        self._actor = actor
        self.start_method = method
        self._tn = task_nursery
        self._children: list[ChildActor] = []
        self._errors: list[BaseException] = []
        self._body_scope: trio.CancelScope | None = None
        self.cancelled = False
        self._closed = False

    @property
    def children(self) -> list[Portal]:
        return [child.portal for child in self._children]

    async def start_actor(self, name: str, *, enable_modules: list[str] | tuple[str, ...] = ()) -> Portal:
        """Spawn a (daemon) actor and return its portal once it is ready.

        It runs until cancelled (``portal.cancel_actor()``, ``cancel()``, or
        an error elsewhere in the nursery); the nursery block waits for it.
        Raises :class:`ActorFailure` if it dies or fails during boot.
        """
        child = await self._spawn(name, list(enable_modules), run_in_actor=False)
        return child.portal

    async def run_in_actor(
        self, fn: Callable[..., object], *, name: str | None = None, **kwargs: Any
    ) -> Portal:
        """Spawn an actor that runs ``fn(**kwargs)`` and then exits.

        The result is collected when the nursery block ends (or earlier, with
        ``portal.wait_for_result()``); an error cancels the whole nursery.
        """
        ref = func_ref(fn)  # refuses lambdas and locals before anything is spawned
        name = name or getattr(fn, '__name__', 'actor')
        child = await self._spawn(name, [ref[0]], run_in_actor=True, call=(ref, kwargs))
        return child.portal

    async def cancel(self) -> None:
        """Cancel every child (the kill ladder, concurrently); return once
        all of them are gone."""
        self.cancelled = True
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for child in self._children:
                    nursery.start_soon(child.stop)

    # -- spawning -------------------------------------------------------------

    def _boot_spec(self, name: str, uid: tuple[str, str], modules: list[str]) -> BootSpec:
        main_path, main_module = main_info(self._actor.spec)
        forkserver = self._actor.forkserver_address
        if self.start_method == 'subint_forkserver' or (
            self.start_method == 'main_thread_forkserver' and not can_fork_here()
        ):
            # Subinterpreter-hosted actors cannot fork: their children will
            # need the tree's forkserver, and so may this process.
            forkserver = self._actor.ensure_forkserver()
        return BootSpec(
            name=name,
            uid=uid,
            parent_uid=self._actor.uid,
            enable_modules=modules,
            spawn_method=self.start_method,
            sys_path=list(sys.path),
            main_path=main_path,
            main_module=main_module,
            forkserver=forkserver,
        )

    async def _spawn(
        self,
        name: str,
        modules: list[str],
        *,
        run_in_actor: bool,
        call: tuple[tuple[str, str], dict[str, Any]] | None = None,
    ) -> ChildActor:
        if self._closed:
            raise RuntimeError('this actor nursery has exited: it cannot spawn any more')
        if self.cancelled:
            raise RuntimeError('this actor nursery is cancelled: it cannot spawn any more')
        uid = (name, uuid.uuid4().hex)
        spec = self._boot_spec(name, uid, modules)
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        started = time.perf_counter()
        try:
            process = await get_spawn_fn(self.start_method)(SpawnRequest(
                name=name,
                entry=ENTRY,
                boot_payload=encode_boot_spec(spec),
                ipc_fd=child_sock.fileno(),
                forkserver=spec.forkserver,
            ))
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        chan = Channel.from_socket(parent_sock, get_codec())
        try:
            await _testhooks.delay('parent_before_handshake')
            await self._handshake(name, chan, process)
            portal = Portal(name, uid, chan, process, time.perf_counter() - started)
            if call is not None:
                await portal._start_result_call(*call)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _kill_and_reap(process)
                await chan.aclose()
            raise
        child = ChildActor(portal, run_in_actor=run_in_actor)
        self._children.append(child)
        self._tn.start_soon(self._supervise, child, name=f'supervise:{name}')
        return child

    async def _handshake(self, name: str, chan: Channel, process: ProcessHandle) -> None:
        """Wait for the child's first message. It cannot be missed: the
        socket existed before the child ran, so an early hello waits in its
        buffer, and a child that dies first closes its end (EOF)."""
        try:
            msg = await chan.recv()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            msg = None
        if isinstance(msg, Ready):
            log.debug('%s (pid %d) is ready', name, process.pid)
            return
        with trio.CancelScope(shield=True):
            with trio.move_on_after(BOOT_REAP_TIMEOUT):
                await process.wait()
            await _kill_and_reap(process)
        status = exit_status_of(process)
        if isinstance(msg, BootFailed):
            raise ActorFailure(name, 'failed to boot', status, remote_error=RemoteActorError(msg.error))
        raise ActorFailure(name, 'died before it was ready', status)

    # -- supervision ------------------------------------------------------------

    async def _supervise(self, child: ChildActor) -> None:
        # Shielded: this task is what notices the child's messages (its
        # cancel ack, its result) and its exit, so it must keep running while
        # the surrounding scope is cancelled and the kill ladder runs. It
        # ends because the child ends: every cancellation path of the nursery
        # calls ``child.stop()``.
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(child.portal._receive_loop)
                if child.run_in_actor:
                    nursery.start_soon(self._collect_result, child)
                await child.process.wait()
                child.process_exited.set()
                log.debug('%s exited: %s', child.name, child.exit_status)
                # A dead child's socket reaches EOF as soon as its last copy
                # closes; the bound only guards against a leaked copy.
                with trio.move_on_after(1.0):
                    await child.portal._closed.wait()
                nursery.cancel_scope.cancel()
            with trio.move_on_after(1.0):
                await child.portal.channel.aclose()
        child.done.set()
        self._check_exit(child)

    def _check_exit(self, child: ChildActor) -> None:
        if child.cancel_requested:
            return
        if child.run_in_actor and child.portal._result is not None:
            return
        self._fail(ActorFailure(child.name, 'exited unexpectedly', child.exit_status))

    async def _collect_result(self, child: ChildActor) -> None:
        ok, value = await child.portal._collect_result()
        # A remote error is a real result even if we were already cancelling
        # the child (its reply may have crossed our cancel request); only the
        # "went away" of a child we cancelled ourselves is not a failure.
        if not ok and not (child.cancel_requested and isinstance(value, ActorFailure)):
            self._fail(value)
        await child.stop()

    def _fail(self, error: BaseException) -> None:
        """One-cancels-all: record ``error``, cancel the body and every child."""
        self._errors.append(error)
        if self._body_scope is not None:
            self._body_scope.cancel()
        if not self.cancelled:
            self.cancelled = True
            for child in self._children:
                self._tn.start_soon(child.stop)

    async def _join(self) -> None:
        for child in list(self._children):
            await child.done.wait()

    def _raise_errors(self, body_error: BaseException | None) -> None:
        errors = list(self._errors)
        if isinstance(body_error, KeyboardInterrupt):
            # Children interrupted by the same Ctrl-C are not separate failures.
            # (Usually the root's own KeyboardInterrupt has them marked as
            # cancelled first; this covers a root whose loop was blocked when
            # the signal landed, so their exits were noticed before it.)
            errors = [e for e in errors if not _exited_on_sigint(e)]
        if body_error is not None and not isinstance(body_error, trio.Cancelled):
            errors.insert(0, body_error)
        if not errors:
            if body_error is not None:
                raise body_error
            return
        if len(errors) == 1:
            if errors[0] is body_error:
                raise body_error
            raise errors[0]
        raise BaseExceptionGroup(f'{len(errors)} errors in actor nursery', errors)


def _exited_on_sigint(error: BaseException) -> bool:
    status = getattr(error, 'exit_status', None)
    return status is not None and status.returncode in (130, -2)


async def _kill_and_reap(process: ProcessHandle) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass
    await process.wait()


@asynccontextmanager
async def open_nursery(start_method: str | None = None) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery: children spawned in it are supervised
    one-cancels-all and are all gone when the block ends.

    ``start_method`` picks the spawn backend for this nursery's children
    (default: :func:`current_start_method`). Errors from children (and the
    body) are raised at the end: one as itself, several as a
    :class:`BaseExceptionGroup`. Cancelling the enclosing scope cancels the
    whole tree.
    """
    method = validate_start_method(start_method) if start_method else current_start_method()
    actor = _current_actor_or_none()
    if actor is None:
        actor = Actor.new_root()
        set_current_actor(actor)
    actor.open_nurseries += 1
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as task_nursery:
            an = ActorNursery(actor, method, task_nursery)
            try:
                with trio.CancelScope() as an._body_scope:
                    yield an
            except BaseException as exc:
                body_error = exc
                await an.cancel()
            else:
                try:
                    with trio.CancelScope(shield=an.cancelled):
                        await an._join()
                except BaseException as exc:  # cancelled from outside while joining
                    body_error = exc
                    await an.cancel()
            finally:
                an._closed = True
        # Raised out here, not inside the task nursery, so that errors (and
        # KeyboardInterrupt) reach the caller as themselves, not wrapped in
        # trio's group.
        an._raise_errors(body_error)
    finally:
        actor.open_nurseries -= 1
        if actor.is_root and actor.open_nurseries == 0:
            # The implicit root actor lives as long as some nursery uses it.
            set_current_actor(None)
            await actor.aclose()
