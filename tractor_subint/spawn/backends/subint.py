"""The ``subint`` backend: each actor in a fresh
subinterpreter of the spawning process, on a thread of its own.

No fork, no exec: the actor's entry runs the one boot path (under trio) in
a new interpreter on a new thread, talking to its parent over the same kind
of connected socket as every other backend. Its handle is a
:class:`SubintActor`: the "process" is the thread, :attr:`~SubintActor.pid`
is this process's, and a "signal" is a byte on the entry's cancel fd (what
a process host's forwarder would write), so cancellation reaches the actor
at its next checkpoint. Nothing can end a thread that never checkpoints:
``kill()`` is a request like ``terminate()``, and an actor stuck in a
blocking call ends when that call returns. What cannot end does not keep
the process from exiting for ever: the kill ladder gives such an actor up
after a grace period, and at exit the process ends with ``os._exit`` once
the same grace has passed, saying what held it (``spawn/_unended``;
``ai/conc-anal/in_process_actor_that_cannot_end.md``).

The kind of interpreter is chosen per actor (``interpreter=`` when spawning
it; :attr:`SpawnRequest.interpreter`), else by ``TRACTOR_SUBINT_SUBINT_MODE``
for the whole tree: ``isolated`` (the default: own GIL, so actors run Python
in parallel; modules that only load in legacy interpreters, msgspec among
them, fail to import there) or ``legacy`` (one GIL shared with the parent).
Either way the actor's channel speaks the ``marshal`` codec, which loads
everywhere.

Boots take turns: at most one actor fewer than the machine has cores
creates its interpreter and imports its runtime at once (:data:`BOOT_SLOTS`),
so the spawning trio loop keeps a core: 8 actors booting together on 2 cores
stalled it for 16-32 ms, taking turns for a few ms
(``ai/conc-anal/in_process_subint_actors.md``).

Warm interpreters (``spawn.pool._interpreters``): a pool per process keeps
isolated interpreters created and warmed (the runtime imported) ahead, so a
spawn takes one in microseconds, and an interpreter whose actor ended
cleanly is recycled rather than destroyed (what carries over, and what is
reset: ``_subint_host.recycle_subint``;
``ai/conc-anal/in_process_interpreter_reuse.md``). ``warm_pool=0`` turns
the pool off; ``TRACTOR_SUBINT_SUBINT_REUSE=0`` keeps it but destroys
every ended actor's interpreter. Memory on 3.13: CPython keeps what an
isolated subinterpreter allocated after it is destroyed (about 9 MiB per
actor here; 3.14 keeps nothing); with reuse, a long-lived tree of actors
that come and go keeps as many interpreters as it runs at once
(``ai/conc-anal/isolated_subint_memory_not_returned_on_3_13.md``).
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

import trio

from .._contract import SpawnRequest
from .._exit_status import ChildExceptionInfo, ChildExit
from .._process_handle import ProcessHandle
from .._subint_host import (
    DEFAULT_TEARDOWN_TIMEOUT,
    SubintExecError,
    SubintKind,
    import_in_subint,
    mark_baseline,
    new_subint,
    run_subint_here,
    teardown_subint,
)
from .._threads import ReraisingThread
from .._tree import current_forkserver_address
from .._unended import label_stranded, track, untrack
from ..pool._interpreters import interpreter_pool

_BOOTSTRAP = '''
import sys
sys.path[:] = __tractor_subint_sys_path__
from tractor_subint.spawn._child_host import run_entry_in_subint
try:
    run_entry_in_subint(
        __tractor_subint_environ__, __tractor_subint_entry__, __tractor_subint_payload__,
        __tractor_subint_ipc_fd__, __tractor_subint_cancel_fd__, __tractor_subint_tree__,
    )
finally:
    # Tell the host which non-daemon threads the actor's code leaves running:
    # the interpreter's teardown waits for them, and so may the process's exit.
    import os, threading
    _left = [
        t.name for t in threading.enumerate()
        if not t.daemon and t not in (threading.current_thread(), threading.main_thread())
    ]
    if _left:
        os.write(__tractor_subint_report_fd__, repr(_left).encode())
'''


class SubintActor(ProcessHandle):
    """A child that is a thread running a subinterpreter in this process
    (the :class:`ProcessHandle` contract, see the module docstring)."""

    def __init__(
        self, name: str, cancel_w: int, run: Callable[[], object], report_r: int = -1,
    ) -> None:
        self.pid = os.getpid()
        self.name = name
        self.returncode: int | None = None
        self.child_exception: ChildExceptionInfo | None = None
        self._cancel_w = cancel_w
        self._signals: list[int] = []
        self._done = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = ReraisingThread(run, name=f'subint-actor[{name}]', on_exit=self._thread_ended)
        self._host = track(name, self._thread)
        self._host.left = self.left_threads
        self._report_r = report_r
        self._left: str = ''

    def left_threads(self) -> str | None:
        """The non-daemon threads the actor's code left running, as its
        subinterpreter reported them when the actor ended (None: none)."""
        if self._report_r >= 0:
            try:
                self._left += os.read(self._report_r, 65536).decode(errors='replace')
            except (BlockingIOError, OSError):
                pass
        return self._left or None

    @property
    def thread_name(self) -> str:
        return self._thread.name

    def describe_holding(self, describe: Callable[[], str | None]) -> None:
        """``describe()`` says what the actor is busy with (its supervisor's
        pending calls), for the message of an exit it holds up."""
        self._host.holding = describe

    async def start(self) -> None:
        """Start the actor's thread. From a worker thread: ``Thread.start()``
        blocks until the new thread runs, which took 2-3 ms each with other
        actors booting, and the spawning loop must not wait that out."""
        await trio.to_thread.run_sync(self._thread.start)

    def __repr__(self) -> str:
        state = 'running' if self.returncode is None else f'returncode={self.returncode}'
        return f'<SubintActor {self.name} {state}>'

    def _thread_ended(self) -> None:
        try:
            self._token.run_sync_soon(self._done.set)
        except trio.RunFinishedError:
            pass

    def _collect(self) -> int:
        if self.returncode is None:
            error = self._thread.error
            if error is None:
                self.returncode = 128 + self._signals[0] if self._signals else 0
            else:
                self.returncode = int(ChildExit.TARGET_RAISED)
                if isinstance(error, SubintExecError):
                    self.child_exception = ChildExceptionInfo(error.type_name, error.message, error.traceback)
                else:
                    self.child_exception = ChildExceptionInfo(type(error).__name__, str(error), '')
            os.close(self._cancel_w)
            self.left_threads()  # read before the pipe closes
            untrack(self._host)
            if self._report_r >= 0:
                os.close(self._report_r)
                self._report_r = -1
        return self.returncode

    def poll(self) -> int | None:
        return None if self._thread.is_alive() else self._collect()

    async def wait(self) -> int:
        await self._done.wait()
        self._thread.join()
        return self._collect()

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None or self._done.is_set():
            return
        self._signals.append(int(sig))
        try:
            os.write(self._cancel_w, bytes([int(sig) & 0xFF]))
        except OSError:
            pass  # a full pipe already holds a cancel request


BOOT_SLOTS = max(1, (os.cpu_count() or 1) - 1)
"""How many actors may boot (create their interpreter, import the runtime)
at once in this process."""
_boot_turns = threading.BoundedSemaphore(BOOT_SLOTS)

MODE_ENV_VAR = 'TRACTOR_SUBINT_SUBINT_MODE'
_MODES: dict[str, SubintKind] = {'legacy': 'legacy', 'isolated': 'isolated'}


def subint_mode(requested: str | None = None) -> SubintKind:
    """``isolated`` or ``legacy``: ``requested`` (an actor's own choice),
    else :data:`MODE_ENV_VAR`, else isolated."""
    if requested is not None:
        try:
            return _MODES[requested]
        except KeyError:
            raise ValueError(f'interpreter must be "isolated" or "legacy", not {requested!r}') from None
    mode = os.environ.get(MODE_ENV_VAR) or 'isolated'
    try:
        return _MODES[mode]
    except KeyError:
        raise ValueError(f'{MODE_ENV_VAR} must be "legacy" or "isolated", not {mode!r}') from None


async def subint_proc(request: SpawnRequest) -> SubintActor:
    """Start ``request``'s entry in a fresh subinterpreter on a new thread."""
    mode = subint_mode(request.interpreter)  # a bad setting fails here, in the caller
    ipc_fd = os.dup(request.ipc_fd)  # the caller closes its copy once we return
    ipc_identity = _identity(ipc_fd)
    cancel_r, cancel_w = os.pipe()
    report_r, report_w = os.pipe()
    os.set_blocking(report_r, False)

    pool = interpreter_pool(mode, request.entry, request.warm_pool)

    def run() -> None:
        try:
            interp_id = pool.take() if pool is not None else None
            if interp_id is None:
                try:
                    with _boot_turns:
                        interp_id = new_subint(mode)
                        _import_entry(interp_id, request.entry)
                except BaseException:
                    if pool is not None:
                        pool.abandon()
                    raise
            clean = False
            try:
                run_subint_here(_BOOTSTRAP, interp_id=interp_id, teardown=False, shared={
                    '__tractor_subint_sys_path__': tuple(sys.path),
                    '__tractor_subint_environ__': tuple(os.environ.items()),
                    '__tractor_subint_entry__': request.entry,
                    '__tractor_subint_payload__': request.boot_payload,
                    '__tractor_subint_ipc_fd__': ipc_fd,
                    '__tractor_subint_cancel_fd__': cancel_r,
                    '__tractor_subint_tree__': current_forkserver_address(),
                    '__tractor_subint_report_fd__': report_w,
                })
                clean = True
            finally:
                if pool is not None:
                    pool.release(interp_id, clean=clean, timeout=DEFAULT_TEARDOWN_TIMEOUT)
                else:
                    teardown_subint(interp_id, DEFAULT_TEARDOWN_TIMEOUT)
                label_stranded(interp_id, f'actor {request.name!r}')
        finally:
            os.close(cancel_r)
            os.close(report_w)
            # The actor's channel owns the socket once it has wrapped it; an
            # entry that failed before that leaves it open, and the parent
            # waiting for a hello would never see the end of it.
            if _identity(ipc_fd) == ipc_identity:
                os.close(ipc_fd)

    actor = SubintActor(request.name, cancel_w, run, report_r)
    try:
        await actor.start()
    except BaseException:
        os.close(cancel_w)
        os.close(cancel_r)
        os.close(report_r)
        os.close(report_w)
        os.close(ipc_fd)
        raise
    return actor


def _import_entry(interp_id: int, entry: str) -> None:
    """Import ``entry``'s module (the runtime: most of a boot's CPU) in the
    new interpreter, and record what it holds then (what a recycle keeps).
    A failure is left for the bootstrap to meet again and report to the
    parent the way every boot failure is."""
    try:
        import_in_subint(interp_id, sys.path, ('tractor_subint.spawn._child_host', entry.partition(':')[0]))
        mark_baseline(interp_id)
    except SubintExecError:
        pass


async def warm_up(entry: str, warm_pool: int | None) -> None:
    """Start this process's pool of warm interpreters for ``entry`` (in the
    tree's default kind), when a nursery that spawns with this backend
    opens; returns at once. A bad default kind is left for the spawn to
    report."""
    try:
        mode = subint_mode(None)
    except ValueError:
        return
    interpreter_pool(mode, entry, warm_pool)


def _identity(fd: int) -> tuple[int, int] | None:
    """What ``fd`` refers to (device, inode), or None if it is closed: a
    number reused by something else since has another identity."""
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino

