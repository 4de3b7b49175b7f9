"""Fork safely from a process that runs trio, on a dedicated thread.

The measured rules (``ai/conc-anal/``) that shape this module:

- ``os.fork()`` from a thread running inside a subinterpreter kills the child
  at once: CPython's post-fork cleanup must run on the main interpreter.
- ``os.fork()`` from *any* thread of a process that holds a live
  subinterpreter crashes the child (SIGABRT on 3.13, SIGSEGV on 3.14).
- Forking from a main-interpreter worker thread while trio runs on the main
  thread works, and the forking thread becomes the child's main thread
  (``_main_tstate``: also for CPython's signal handling).

So :func:`fork_from_worker_thread` refuses the first two cases with a
:class:`RuntimeError` and forks the third from this process's forker: one
long-lived main-interpreter thread that only ever forks (:class:`Forker`),
so that it never entered a subinterpreter. One thread for every fork, not a
fresh one per fork: a thread's start makes its starter wait until the new
thread holds the GIL, which other threads' forks hold; in a burst of 8
spawns, the spawner's event loop stalled there (2 cores, 3.13), each spawn
starting a trio worker thread and that worker a forking thread.
"""
from __future__ import annotations

import _interpreters
import gc
import os
import queue
import re
import threading
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import NoReturn

from .._exceptions import PUBLIC_MODULE, TractorSubintError
from ._child_report import REPORTS, read_report, write_report
from ._docs import FORK_IN_SUBINT_DOC, FORK_WITH_LIVE_SUBINT_DOC
from ._exit_status import ChildExit, ChildExitStatus, exit_code_of
from ._main_tstate import adopt_main_tstate, locate_main_tstate
from ._prelude import (
    ResolvedStdio,
    StdioPolicy,
    flush_std_streams,
    resolve_stdio_policy,
    run_child_prelude,
)
from ._subint_host import CREATION_LOCK


def in_subinterpreter() -> bool:
    """Whether the calling thread runs inside a subinterpreter."""
    return bool(_interpreters.get_current() != _interpreters.get_main())


def live_subinterpreters() -> list[int]:
    """Ids of every interpreter of this process other than the main one."""
    main = _interpreters.get_main()
    return [int(iid[0]) for iid in _interpreters.list_all() if iid != main]


def can_fork_here() -> bool:
    """Whether this thread may fork now: not inside a subinterpreter, and
    this process holds none."""
    return not in_subinterpreter() and not live_subinterpreters()


class SubinterpretersAliveError(TractorSubintError, RuntimeError):
    """Refused to fork: this process holds live subinterpreters (it may be
    able to later, once they are gone)."""

    __module__ = PUBLIC_MODULE


def refuse_unsafe_fork() -> None:
    """Raise :class:`RuntimeError` where a fork would produce a dying child
    (:class:`SubinterpretersAliveError` while subinterpreters live)."""
    if in_subinterpreter():
        raise RuntimeError(
            f'refusing to fork from inside subinterpreter '
            f'{_interpreters.get_current()[0]}: CPython only runs a forked '
            f"child's post-fork cleanup on the main interpreter, so the child "
            f'would die at once. Fork from the main interpreter, or ask a '
            f'forkserver process to fork for you (see {FORK_IN_SUBINT_DOC}).'
        )
    live = live_subinterpreters()
    if live:
        raise SubinterpretersAliveError(
            f'refusing to fork: this process holds {len(live)} live '
            f'subinterpreter(s) (ids {live}), and a child forked now crashes '
            f'in its post-fork cleanup whatever thread forks (CPython issue '
            f'101437). Destroy them first, or fork through a forkserver '
            f'process that never creates subinterpreters '
            f'(see {FORK_WITH_LIVE_SUBINT_DOC}).'
        )


def _child_main(
    child_target: Callable[[], object] | None,
    report_fd: int,
    keep_fds: frozenset[int],
    stdio: ResolvedStdio,
) -> NoReturn:
    """Everything the child does; ends the process, whatever happens."""
    # Before the prelude releases the inherited fds: every object inherited
    # from the parent moves to the permanent generation, so no later
    # collection in this child finalises one (an inherited socket object would
    # close its fd *number*, the prelude's tombstone or a number this child
    # has since reused). It also keeps the collector off
    # the inherited pages, which stay shared with the parent (copy-on-write).
    # ai/conc-anal/late_finalisers_after_fork.md
    gc.freeze()
    code: int = ChildExit.PRELUDE_FAILED
    try:
        REPORTS.forget_all()
        run_child_prelude(keep_fds=keep_fds | {report_fd}, stdio=stdio)
        code = ChildExit.TARGET_RAISED
        if child_target is not None:
            child_target()
        code = ChildExit.OK
    except SystemExit as exc:
        code = exit_code_of(exc)
    except BaseException as exc:
        write_report(report_fd, exc)
        if isinstance(exc, KeyboardInterrupt):
            code = ChildExit.INTERRUPTED
    finally:
        flush_std_streams()
        os._exit(code)


def fork_quietly() -> int:
    """``os.fork()`` without CPython's "multi-threaded, use of fork() may
    lead to deadlocks" DeprecationWarning for this one call.

    Forking from a dedicated thread while other threads run is this module's
    design, and the child only runs our prelude before its target: users
    should not see that warning for every spawn. The filter is scoped to the
    call and to this module (the warning is attributed to os.fork's caller),
    so another library's fork still warns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore',
            message=r'This process \(pid=\d+\) is multi-threaded, use of fork\(\)',
            category=DeprecationWarning,
            module=re.escape(__name__),
        )
        return os.fork()


class Forker:
    """This process's forking thread: it runs each job handed to it
    (:meth:`submit`), one at a time, and nothing else. Started on first use
    (from the main interpreter: a thread runs in the interpreter that starts
    it); a forked child starts with none (its copy of the thread is its
    main thread)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def on_forker(self) -> bool:
        """Whether the calling thread is the forker."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the forker soon (it must not raise); returns at
        once, without waiting for a thread to start."""
        refuse_unsafe_fork()  # never start the forker inside a subinterpreter
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name='tractor-subint-forker', daemon=True)
                self._thread.start()
        self._jobs.put(job)

    def call(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the forker and wait until it has run."""
        if self.on_forker():
            job()
            return
        done = threading.Event()

        def run() -> None:
            try:
                job()
            finally:
                done.set()

        self.submit(run)
        done.wait()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job()
            except BaseException:  # a job's bug must not leave every later fork waiting
                traceback.print_exc()

    def _forget_after_fork(self) -> None:
        self._jobs = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()


FORKER = Forker()
"""The one that forks this process's children."""
os.register_at_fork(after_in_child=FORKER._forget_after_fork)


def fork_with_report(
    child_target: Callable[[], object] | None,
    *,
    thread_name: str,
    keep_fds: Iterable[int] = (),
    stdio: StdioPolicy | None = None,
) -> tuple[int, int]:
    """:func:`fork_from_worker_thread`, returning ``(pid, report_fd)``: the
    caller owns the read end of the child's exception report pipe (see
    :func:`~tractor_subint.spawn._child_report.read_report`). Blocking: it
    waits for :data:`FORKER` (or forks, called on it)."""
    refuse_unsafe_fork()
    locate_main_tstate()
    keep = frozenset(keep_fds)
    resolved_stdio = resolve_stdio_policy(stdio)
    report_r, report_w = os.pipe()
    outcome: dict[str, object] = {}

    def fork_here() -> None:
        try:
            # Checked again here, with creations held off until the fork.
            with CREATION_LOCK:
                refuse_unsafe_fork()
                flush_std_streams()
                pid = fork_quietly()
        except BaseException as exc:
            outcome['error'] = exc
            return
        if pid == 0:
            adopt_main_tstate()  # this thread is the child's main thread: signals too
            threading.current_thread().name = thread_name
            _child_main(child_target, report_w, keep, resolved_stdio)
        outcome['pid'] = pid

    FORKER.call(fork_here)
    os.close(report_w)
    error = outcome.get('error')
    if isinstance(error, BaseException):
        os.close(report_r)
        raise error
    pid = outcome['pid']
    assert isinstance(pid, int)
    return pid, report_r


def fork_from_worker_thread(
    child_target: Callable[[], object] | None = None,
    *,
    thread_name: str = 'tractor-subint-forker',
    keep_fds: Iterable[int] = (),
    stdio: StdioPolicy | None = None,
) -> int:
    """Fork from this process's forker thread (a main-interpreter thread that
    only ever forks); return the child's pid.

    Blocking: call it from trio through ``trio.to_thread.run_sync``.

    In the child, the forking thread (renamed ``thread_name``) is the only
    thread and becomes ``threading.main_thread()``. It runs the prelude (fds
    other than 0/1/2 and ``keep_fds`` released, their numbers left on
    ``/dev/null``; signal handlers and wakeup fd reset; ``stdio`` policy
    applied), then ``child_target()``, then exits
    with a :class:`ChildExit` code. If the target raises, reap the child with
    :func:`wait_child` or :class:`ForkedProcess` to get the exception's type,
    message and traceback.

    Raises :class:`RuntimeError` instead of forking when called inside a
    subinterpreter or while this process holds a live subinterpreter.
    """
    pid, report_fd = fork_with_report(
        child_target, thread_name=thread_name, keep_fds=keep_fds, stdio=stdio,
    )
    REPORTS.register(pid, report_fd)
    return pid


def wait_child(pid: int, *, expect_exit_ok: bool = True) -> tuple[bool, str]:
    """Block until child ``pid`` exits, reap it, and classify how it ended.

    Returns ``(ok, status)``: ``ok`` is whether the outcome is the expected
    one (exit code 0 when ``expect_exit_ok``, anything else otherwise), and
    ``status`` the human-readable :meth:`ChildExitStatus.describe`, with the
    exception the child's target raised when it was forked by
    :func:`fork_from_worker_thread`.
    """
    _, wait_status = os.waitpid(pid, 0)
    report_fd = REPORTS.claim(pid)
    status = ChildExitStatus(
        pid,
        os.waitstatus_to_exitcode(wait_status),
        None if report_fd is None else read_report(report_fd),
    )
    return (status.returncode == 0) == expect_exit_ok, status.describe()


locate_main_tstate()  # on the main thread, where the search can be sure
