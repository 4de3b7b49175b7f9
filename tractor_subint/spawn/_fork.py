"""Fork safely from a process that runs trio, on a dedicated thread.

The measured rules (``ai/conc-anal/``) that shape this module:

- ``os.fork()`` from a thread running inside a subinterpreter kills the child
  at once: CPython's post-fork cleanup must run on the main interpreter.
- ``os.fork()`` from *any* thread of a process that holds a live
  subinterpreter crashes the child (SIGABRT on 3.13, SIGSEGV on 3.14).
- Forking from a main-interpreter worker thread while trio runs on the main
  thread works, and the forking thread becomes the child's main thread.

So :func:`fork_from_worker_thread` refuses the first two cases with a
:class:`RuntimeError` and forks the third from a fresh thread that has never
entered a subinterpreter.
"""
from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable, Iterable
from typing import NoReturn

import _interpreters

from ._child_report import REPORTS, write_report
from ._prelude import (
    ResolvedStdio,
    StdioPolicy,
    flush_std_streams,
    resolve_stdio_policy,
    run_child_prelude,
)

FORK_IN_SUBINT_DOC = 'ai/conc-anal/subint_fork_blocked_by_cpython_post_fork.md'
FORK_WITH_LIVE_SUBINT_DOC = 'ai/conc-anal/fork_with_live_subinterpreter.md'


class ChildExit(enum.IntEnum):
    """Exit codes of a child forked by :func:`fork_from_worker_thread`.

    A target that calls ``sys.exit(n)`` exits with ``n`` instead (``None``
    is 0, a non-integer is 1, as for the interpreter itself).
    """

    OK = 0
    """The target returned."""
    TARGET_RAISED = 70
    """The target raised; the parent can read the exception report."""
    PRELUDE_FAILED = 71
    """The post-fork prelude failed (bad stdio file, ...); report available."""
    PARENT_GONE = 72
    """The child's lifeline hung up (its parent died) and it exited on its own."""
    INTERRUPTED = 130
    """The target raised KeyboardInterrupt (128 + SIGINT)."""


def in_subinterpreter() -> bool:
    return _interpreters.get_current() != _interpreters.get_main()


def live_subinterpreters() -> list[int]:
    """Ids of every interpreter of this process other than the main one."""
    main = _interpreters.get_main()
    return [int(iid[0]) for iid in _interpreters.list_all() if iid != main]


def refuse_unsafe_fork() -> None:
    """Raise :class:`RuntimeError` where a fork would produce a dying child."""
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
        raise RuntimeError(
            f'refusing to fork: this process holds {len(live)} live '
            f'subinterpreter(s) (ids {live}), and a child forked now crashes '
            f'in its post-fork cleanup whatever thread forks (CPython issue '
            f'101437). Destroy them first, or fork through a forkserver '
            f'process that never creates subinterpreters '
            f'(see {FORK_WITH_LIVE_SUBINT_DOC}).'
        )


def _exit_code_of(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _child_main(
    child_target: Callable[[], object] | None,
    report_fd: int,
    keep_fds: frozenset[int],
    stdio: ResolvedStdio,
) -> NoReturn:
    """Everything the child does; ends the process, whatever happens."""
    code: int = ChildExit.PRELUDE_FAILED
    try:
        REPORTS.forget_all()
        run_child_prelude(keep_fds=keep_fds | {report_fd}, stdio=stdio)
        code = ChildExit.TARGET_RAISED
        if child_target is not None:
            child_target()
        code = ChildExit.OK
    except SystemExit as exc:
        code = _exit_code_of(exc)
    except BaseException as exc:
        write_report(report_fd, exc)
        if isinstance(exc, KeyboardInterrupt):
            code = ChildExit.INTERRUPTED
    finally:
        flush_std_streams()
        os._exit(code)


def fork_from_worker_thread(
    child_target: Callable[[], object] | None = None,
    *,
    thread_name: str = 'tractor-subint-forker',
    keep_fds: Iterable[int] = (),
    stdio: StdioPolicy | None = None,
) -> int:
    """Fork from a fresh main-interpreter thread; return the child's pid.

    Blocking: call it from trio through ``trio.to_thread.run_sync``.

    In the child, the forking thread (named ``thread_name``) is the only
    thread and becomes ``threading.main_thread()``. It runs the prelude (fds
    other than 0/1/2 and ``keep_fds`` closed, signal handlers and wakeup fd
    reset, ``stdio`` policy applied), then ``child_target()``, then exits
    with a :class:`ChildExit` code. If the target raises, reap the child with
    :func:`wait_child` or :class:`ForkedProcess` to get the exception's type,
    message and traceback.

    Raises :class:`RuntimeError` instead of forking when called inside a
    subinterpreter or while this process holds a live subinterpreter.
    """
    refuse_unsafe_fork()
    keep = frozenset(keep_fds)
    resolved_stdio = resolve_stdio_policy(stdio)
    report_r, report_w = os.pipe()
    outcome: dict[str, object] = {}

    def fork_here() -> None:
        try:
            # Checked again here: the window to the fork is now one thread hop.
            refuse_unsafe_fork()
            flush_std_streams()
            pid = os.fork()
        except BaseException as exc:
            outcome['error'] = exc
            return
        if pid == 0:
            _child_main(child_target, report_w, keep, resolved_stdio)
        outcome['pid'] = pid

    forker = threading.Thread(target=fork_here, name=thread_name)
    forker.start()
    forker.join()
    os.close(report_w)
    if 'error' in outcome:
        os.close(report_r)
        raise outcome['error']  # type: ignore[misc]
    pid = outcome['pid']
    assert isinstance(pid, int)
    REPORTS.register(pid, report_r)
    return pid
