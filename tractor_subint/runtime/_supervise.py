"""Actor nurseries: spawn children, supervise them one-cancels-all, and make
sure every one of them is gone when the nursery block ends.

A child is spawned through its backend's record (``spawn.get_backend``),
handshaken here, then owned by a :class:`ChildActor` (``_child``: its
supervision and kill ladder); the nursery adds the policy: an error anywhere
cancels the body and every sibling, and errors are raised at the end.
"""
from __future__ import annotations

import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._exceptions import ProtocolError
from ..log import console_level, get_logger, level_name
from ..spawn import ProcessHandle, SpawnRequest, current_start_method, get_backend, validate_start_method
from . import _registry, _testhooks
from ._actor import Actor
from ._boot import ENTRY
from ._bootspec import Aid, BootSpec, Uid
from ._channel import MAX_FRAME, Channel, check_max_frame
from ._child import ChildActor
from ._codec import codec_for_channel, get_codec
from ._debug import wait_for_tty
from ._discovery import address_for, check_transports
from ._errors import ActorFailure, RemoteActorError
from ._interrupts import ended_by_sigint, interrupts_unwrapped, plain_interrupt
from ._msgs import BootFailed, Ready
from ._portal import Portal
from ._root import holding_root
from ._targets import check_target, func_ref, main_info, module_ref

log = get_logger('runtime')

REGISTRY_UPDATE_TIMEOUT = 2.0
"""Seconds a parent waits for the registrar to note a child's arrival or
departure before it goes on without."""

BOOT_REAP_TIMEOUT = 3.0
"""How long a child that failed its boot gets to exit before it is killed."""


def module_names(enable_modules: object) -> list[str]:
    """``enable_modules`` checked and normalised: a list of module names.

    A bare string is refused (iterating it would enable one module per
    character); ``__mp_main__`` (the script's ``__name__`` inside an actor
    that loaded it) means the tree's main script, as ``__main__`` does.
    """
    if isinstance(enable_modules, (str, bytes)):
        raise TypeError(
            f'enable_modules must be a list of module names, not the string '
            f'{enable_modules!r}: did you mean enable_modules=[{enable_modules!r}]?'
        )
    try:
        names = list(enable_modules)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f'enable_modules must be a list of module names, not {type(enable_modules).__name__}'
        ) from None
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f'enable_modules holds {name!r}: each entry must be a module name (str)')
    return [module_ref(name) for name in names]


class ActorNursery:
    """Spawns and supervises child actors; see :func:`open_nursery`."""

    def __init__(
        self, actor: Actor, method: str, task_nursery: trio.Nursery, *, warm_pool: int | None = None,
        max_frame: int = MAX_FRAME, loglevel: str | int | None = None,
    ) -> None:
        self._actor = actor
        self.start_method = method
        self.warm_pool = warm_pool
        """The warm pool size this nursery's spawns ask for (backends that keep one)."""
        self.max_frame = max_frame
        """The frame limit of the channels to this nursery's children, in bytes."""
        self.loglevel = None if loglevel is None else level_name(loglevel)
        """The console log level of this nursery's children (None: this actor's)."""
        self._tn = task_nursery
        self._children: list[ChildActor] = []
        self._errors: list[BaseException] = []
        self._body_scope: trio.CancelScope | None = None
        self._body_done = trio.Event()
        """Set when the nursery's block has ended (run_in_actor children that
        are done then end)."""
        self.cancelled = False
        self._closed = False

    @property
    def children(self) -> list[Portal]:
        """The portals of the children not yet reaped (started, running, or
        being cancelled); a child leaves this list once it is gone."""
        return [child.portal for child in self._children]

    async def start_actor(
        self, name: str, *, enable_modules: list[str] | tuple[str, ...] = (),
        interpreter: str | None = None, loglevel: str | int | None = None,
        debug_mode: bool | None = None,
    ) -> Portal:
        """Spawn a (daemon) actor and return its portal once it is ready.

        It runs until cancelled (``portal.cancel_actor()``, ``cancel()``, or
        an error elsewhere in the nursery); the nursery block waits for it.
        Raises :class:`ActorFailure` if it dies or fails during boot.

        ``interpreter`` picks the kind of subinterpreter that hosts the actor,
        for a spawn method that offers a choice (``subint``: ``'isolated'``,
        its default, or ``'legacy'``, where modules such as msgspec load); a
        :class:`ValueError` before spawning for any other.

        ``loglevel`` is the actor's console log level (default: the
        nursery's, else this actor's); ``debug_mode`` is described in the
        README ("Debug mode").
        """
        child = await self._spawn(
            name, module_names(enable_modules), interpreter=interpreter, loglevel=loglevel,
            debug_mode=debug_mode,
        )
        return child.portal

    async def run_in_actor(
        self, fn: Callable[..., object], *, name: str | None = None,
        interpreter: str | None = None, loglevel: str | int | None = None,
        debug_mode: bool | None = None, **kwargs: Any,
    ) -> Portal:
        """Spawn an actor that runs ``fn(**kwargs)`` and then exits.

        The result is collected when the nursery block ends (or earlier, with
        ``portal.wait_for_result()``); an error cancels the whole nursery.
        ``name``, ``interpreter``, ``loglevel`` and ``debug_mode`` are as for
        :meth:`start_actor` (so ``fn`` cannot take arguments of those names
        through here).
        """
        check_target(fn, stream=False)
        module, _qualname = func_ref(fn)  # refuses lambdas and locals before anything is spawned
        name = name or str(getattr(fn, '__name__', 'actor'))
        child = await self._spawn(
            name, [module], run_call=(fn, kwargs), interpreter=interpreter, loglevel=loglevel,
            debug_mode=debug_mode,
        )
        return child.portal

    async def cancel(self) -> None:
        """Cancel every child (the kill ladder, concurrently); return once
        all of them are gone."""
        self.cancelled = True
        with trio.CancelScope(shield=True), interrupts_unwrapped():
            await wait_for_tty(self._actor)  # a child's REPL ends first (debug mode)
            async with trio.open_nursery() as nursery:
                for child in self._children:
                    nursery.start_soon(child.stop)

    # -- spawning -------------------------------------------------------------

    def _boot_spec(
        self, name: str, uid: Uid, modules: list[str], loglevel: str | int | None = None,
        *, debug_mode: bool = False,
    ) -> BootSpec:
        main_path, main_module = main_info(self._actor.spec)
        return BootSpec(
            name=name,
            uid=uid,
            enable_modules=modules,
            spawn_method=self.start_method,
            sys_path=list(sys.path),
            main_path=main_path,
            main_module=main_module,
            codec=codec_for_channel(get_backend(self.start_method).codec),
            log_level=level_name(loglevel) if loglevel is not None else self.loglevel or console_level(),
            max_frame=self.max_frame,
            debug_mode=debug_mode,
            registrar=self._actor.registrar_address,
        )

    async def _spawn(
        self,
        name: str,
        modules: list[str],
        *,
        run_call: tuple[Callable[..., object], dict[str, Any]] | None = None,
        interpreter: str | None = None,
        loglevel: str | int | None = None,
        debug_mode: bool | None = None,
    ) -> ChildActor:
        backend = get_backend(self.start_method)
        backend.check_interpreter(interpreter)
        if self._closed:
            raise RuntimeError('this actor nursery has exited: it cannot spawn any more')
        if self.cancelled:
            raise RuntimeError('this actor nursery is cancelled: it cannot spawn any more')
        uid = (name, uuid.uuid4().hex)
        debug = self._actor.debug_mode if debug_mode is None else debug_mode
        spec = self._boot_spec(name, uid, modules, loglevel, debug_mode=debug)
        codec = get_codec(spec.codec)  # one that cannot load here fails before anything is spawned
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        started = time.perf_counter()
        try:
            process = await backend.spawn(SpawnRequest(
                name=name, entry=ENTRY, boot_payload=spec.to_bytes(), ipc_fd=child_sock.fileno(),
                warm_pool=self.warm_pool, interpreter=interpreter,
            ))
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        chan = Channel.from_socket(parent_sock, codec, max_frame=self.max_frame)
        chan.aid = Aid(name, uid[1], process.pid)
        try:
            await _testhooks.delay('parent_before_handshake')
            await self._handshake(name, chan, process)
            await self._registry_update(_registry.register, uid=uid, address=address_for(uid))
            child = ChildActor(
                name, uid, process, chan, spawn_time=time.perf_counter() - started,
                on_failure=self._fail, body_done=self._body_done,
            )
            if run_call is not None:
                await child.start_run_call(*run_call)
        except BaseException:
            with trio.CancelScope(shield=True):
                await _kill_and_reap(process)
                await chan.aclose()
            raise
        self._children.append(child)
        self._tn.start_soon(self._supervise, child, name=f'supervise:{name}')
        return child

    async def _handshake(self, name: str, chan: Channel, process: ProcessHandle) -> None:
        """Wait for the child's first message. It cannot be missed: the
        socket existed before the child ran, so an early hello waits in its
        buffer, and a child that dies first closes its end (EOF)."""
        protocol_error = None
        try:
            msg = await chan.recv()
        except (trio.EndOfChannel, trio.BrokenResourceError):
            msg = None
        except ProtocolError as exc:
            msg, protocol_error = None, exc
        if isinstance(msg, Ready):
            log.debug('%s (pid %d) is ready', name, process.pid)
            return
        with trio.CancelScope(shield=True):
            with trio.move_on_after(BOOT_REAP_TIMEOUT):
                await process.wait()
            await _kill_and_reap(process)
        status = process.exit_status
        if isinstance(msg, BootFailed):
            raise ActorFailure(name, 'failed to boot', status, remote_error=RemoteActorError(msg.error))
        if protocol_error is not None:
            raise ActorFailure(name, f'was killed during boot: it sent {protocol_error}', status)
        raise ActorFailure(name, 'died before it was ready', status)

    # -- supervision ------------------------------------------------------------

    async def _registry_update(self, fn: Callable[..., object], **kwargs: Any) -> None:
        """Tell the registrar of a child's arrival or departure; bounded and
        shielded (a departure is told while the nursery is cancelled), and
        never fatal: a tree whose root is going away just finds less."""
        with trio.move_on_after(REGISTRY_UPDATE_TIMEOUT, shield=True) as scope:
            try:
                await self._actor.registrar_call(fn, **kwargs)
            except Exception as exc:
                log.warning('could not tell the registrar %s%r: %r', fn.__name__, kwargs, exc)
        if scope.cancelled_caught:
            log.warning('the registrar did not answer %s%r in time', fn.__name__, kwargs)

    async def _supervise(self, child: ChildActor) -> None:
        await child.supervise()
        await self._registry_update(_registry.unregister, uid=child.portal.uid)
        failure = child.exit_failure()
        if failure is not None:
            self._fail(failure)
        # Reaped: the nursery lets go of it (a long-lived nursery must not
        # keep every finished child). Its portal, for as long as the caller
        # keeps it, still answers wait_for_result() and says how it ended.
        self._children.remove(child)

    def _fail(self, error: BaseException) -> None:
        """One-cancels-all: record ``error``, cancel the body and every child."""
        self._errors.append(error)
        if self._body_scope is not None:
            self._body_scope.cancel()
        if not self.cancelled:
            self.cancelled = True
            self._tn.start_soon(self._stop_children)

    async def _stop_children(self) -> None:
        with trio.CancelScope(shield=True):
            await wait_for_tty(self._actor)  # a child's REPL ends first (debug mode)
            for child in list(self._children):
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
            errors = [e for e in errors if not ended_by_sigint(e)]
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


async def _kill_and_reap(process: ProcessHandle) -> None:
    process.kill()  # a no-op once it has exited
    await process.wait()


@asynccontextmanager
async def open_nursery(
    start_method: str | None = None, *, warm_pool: int | None = None, max_frame: int = MAX_FRAME,
    loglevel: str | int | None = None, debug_mode: bool = False,
    enable_transports: Sequence[str] | None = None,
) -> AsyncIterator[ActorNursery]:
    """Open an actor nursery: children spawned in it are supervised
    one-cancels-all and are all gone when the block ends.

    ``start_method`` picks the spawn backend for this nursery's children
    (default: :func:`current_start_method`). ``warm_pool`` sizes the warm
    pool of backends that keep one (``subint_forkserver``: children forked
    and warmed ahead of time; ``subint``: interpreters): a size, warm from
    the opening; default ``$TRACTOR_SUBINT_WARM_POOL``, else adaptive (it
    warms from the process's second spawn on, then follows demand); 0 turns
    it off. ``max_frame`` is the largest message, encoded, that a
    channel between this nursery and its children carries, in bytes (default
    :data:`~tractor_subint.runtime._channel.MAX_FRAME`, 64 MiB; at most
    2**32 - 1): a call, a result or a stream item larger than that fails,
    where it is sent, with :class:`FrameTooLarge` (the actor lives). Errors
    from children (and the body) are raised at the end: one as itself,
    several as a :class:`BaseExceptionGroup`. Cancelling the enclosing scope
    cancels the whole tree.

    Outside any actor, the nursery opens the tree's root actor
    (``open_root_actor``) for as long as it is open; ``loglevel`` and
    ``debug_mode`` then go to it. ``loglevel`` is also the console log
    level of this nursery's children (unless a spawn names its own).
    ``enable_transports`` is accepted when it asks for what actors here
    speak: ``['uds']``.
    """
    check_transports(enable_transports)
    max_frame = check_max_frame(max_frame)
    method = validate_start_method(start_method) if start_method else current_start_method()
    async with (
        holding_root(loglevel=loglevel, debug_mode=debug_mode) as actor,
        _nursery(actor, method, warm_pool, max_frame, loglevel) as an,
    ):
        yield an


@asynccontextmanager
async def _nursery(
    actor: Actor, method: str, warm_pool: int | None, max_frame: int, loglevel: str | int | None,
) -> AsyncIterator[ActorNursery]:
    body_error: BaseException | None = None
    await get_backend(method).warm_up(ENTRY, warm_pool)
    async with trio.open_nursery() as task_nursery:
        an = ActorNursery(
            actor, method, task_nursery, warm_pool=warm_pool, max_frame=max_frame,
            loglevel=loglevel,
        )
        try:
            with trio.CancelScope() as an._body_scope:
                yield an
        except BaseException as exc:
            an._body_done.set()
            body_error = plain_interrupt(exc)
            await an.cancel()
        else:
            an._body_done.set()
            try:
                with trio.CancelScope(shield=an.cancelled):
                    await an._join()
            except BaseException as exc:  # cancelled from outside while joining
                body_error = plain_interrupt(exc)
                await an.cancel()
        finally:
            an._closed = True
    # Raised out here, not inside the task nursery, so that errors (and
    # KeyboardInterrupt) reach the caller as themselves, not wrapped in
    # trio's group.
    an._raise_errors(body_error)
