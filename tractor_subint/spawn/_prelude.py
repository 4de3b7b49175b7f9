"""The first things a forked child does, before any code of its own.

``fork()`` without ``exec()`` leaves the child holding everything the parent
had: every fd (listening sockets, pipes, trio's epoll and wakeup socket), the
parent's signal handlers (trio's KeyboardInterrupt manager, a closure over the
parent's runner) and the parent's C-level signal wakeup fd. Each of those has
bitten us (see ``ai/conc-anal/orphan_sigint_wedge.md``), so the prelude puts
the child into the state a freshly exec'd interpreter would be in:

- fds: everything but 0/1/2 and what the caller asks to keep is released,
  its number left on ``/dev/null`` (a *tombstone*) rather than closed. The
  parent's Python objects still name those numbers (a ``logging`` handler's
  file, a socket): were the numbers free, the child's next socket would take
  one and those objects would write into it
  (``ai/conc-anal/inherited_fd_numbers_reused.md``);
- signals: Python-level handlers are back to the defaults, the signal mask is
  empty and there is no wakeup fd (``SIG_IGN`` dispositions are kept, as
  ``exec`` keeps them);
- stdio: fds 0/1/2 per :data:`StdioPolicy`, and ``sys.stdin/stdout/stderr``
  bound to fds 0/1/2. The parent's may wrap some other fd, which the prelude
  has just closed: under pytest's capture, ``sys.stdout`` writes to a private
  temp-file fd, and a child ``print()`` would fail with EBADF
  (``ai/conc-anal/pytest_capture_and_forked_children.md``);
- imports: a module another thread of the parent was importing at the fork
  is forgotten (its lock and its half-run module), or the child's first
  import of it would wait forever for a thread it does not have
  (``ai/conc-anal/first_import_while_a_thread_forks.md``).
"""
from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # (no stubs: signal wraps it)
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

STDIO_ENV_VAR = 'TRACTOR_SUBINT_CHILD_STDIO'

StdioPolicy = Literal['inherit', 'devnull'] | str | os.PathLike[str]
"""Where a forked child's fds 0/1/2 point.

- ``'inherit'``: the parent's fds, unchanged.
- ``'devnull'``: all three on ``/dev/null``. A child then holds none of the
  parent's pipes, so a reader waiting for EOF on the parent's stdout (a test
  harness, a CI log pipe) is not kept waiting by a long-lived child, and a
  child can never block on a pipe nobody drains.
- an absolute path: stdin on ``/dev/null``, stdout and stderr appended to that
  file (created if missing), so output is kept but never blocks.

When no policy is given, the ``TRACTOR_SUBINT_CHILD_STDIO`` environment
variable is used, then ``'inherit'``.
"""


@dataclass(frozen=True)
class ResolvedStdio:
    mode: Literal['inherit', 'devnull', 'file']
    path: str | None = None


def resolve_stdio_policy(policy: StdioPolicy | None = None) -> ResolvedStdio:
    """Validate a policy in the parent, so bad input fails before forking."""
    if policy is None:
        policy = os.environ.get(STDIO_ENV_VAR) or 'inherit'
    if policy in ('inherit', 'devnull'):
        return ResolvedStdio(policy)  # type: ignore[arg-type]
    path = os.fspath(policy)
    if not os.path.isabs(path):
        raise ValueError(
            f'stdio policy {policy!r} is neither "inherit", "devnull" nor an '
            f'absolute file path'
        )
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ValueError(f'stdio policy file {path!r}: {parent!r} is not a directory')
    return ResolvedStdio('file', path)


def release_inherited_fds(keep: Iterable[int] = ()) -> None:
    """Release every fd except 0, 1, 2 and ``keep``, keeping its number taken.

    Each one is replaced by a close-on-exec ``/dev/null`` fd: what it referred
    to is released as by ``close()`` (a pipe's reader sees EOF, a listening
    port is freed), but no new fd of this process can get that number, so an
    inherited object still holding it reads EOF and writes into nothing.
    """
    kept = {0, 1, 2, *keep}
    try:
        inherited = [int(fd) for fd in os.listdir('/proc/self/fd')]
    except OSError:
        _close_all_but(kept)  # no /proc: released, but the numbers are free
        return
    tombstone = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for fd in inherited:
            if fd not in kept and fd != tombstone:
                # The listing's own fd, closed by now, may be in the list:
                # a spare tombstone is harmless.
                os.dup2(tombstone, fd, inheritable=False)
    finally:
        os.close(tombstone)


def _close_all_but(kept: set[int]) -> None:
    lo = 0
    for fd in sorted(kept):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, os.sysconf('SC_OPEN_MAX'))


def reset_signal_state() -> None:
    """Give the child the signal state of a fresh interpreter.

    Must run on the child's main thread, which after a fork is the thread
    that forked.
    """
    signal.set_wakeup_fd(-1)
    # ``_signal``, which ``signal`` wraps: the wrappers make an enum member of
    # every signal number and handler they pass (signal.valid_signals() alone
    # is ~0.15 ms of every forked child's start). Every number is tried: one
    # that is no signal here fails getsignal.
    _signal.pthread_sigmask(signal.SIG_SETMASK, ())
    for signum in range(1, signal.NSIG):
        try:
            handler = _signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if not callable(handler):
            continue  # SIG_DFL, SIG_IGN, or installed outside Python
        default = signal.default_int_handler if signum == signal.SIGINT else _signal.SIG_DFL
        if handler is not default:
            _signal.signal(signum, default)


def apply_stdio_policy(stdio: ResolvedStdio) -> None:
    if stdio.mode == 'inherit':
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    out = devnull
    if stdio.mode == 'file':
        assert stdio.path is not None
        out = os.open(stdio.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {devnull, out}:
        if fd > 2:
            os.close(fd)


def rebind_std_streams() -> None:
    """Point ``sys.stdin/stdout/stderr`` at fds 0/1/2 where they do not."""
    for name, fd, mode in (('stdin', 0, 'r'), ('stdout', 1, 'w'), ('stderr', 2, 'w')):
        stream = getattr(sys, name)
        try:
            if stream is not None and stream.fileno() == fd:
                continue
        except (OSError, ValueError, AttributeError):
            pass  # no fd at all (io.StringIO, pytest's sys capture): replace it
        setattr(sys, name, open(  # noqa: SIM115 (it lives on as sys.<name>)
            fd, mode, buffering=1, closefd=False,
            errors='backslashreplace' if name == 'stderr' else None,
        ))


def name_this_process(name: str) -> None:
    """Set this process's name as ``ps -o comm`` and ``/proc/PID/stat``
    show it (15 bytes; a zombie keeps it). From any thread or interpreter:
    ``/proc/self/comm`` names the main thread, which ``prctl`` would not."""
    # 15 bytes, never half a character. Written through the fd: an io stack
    # (a text file, its encoder) is ~0.1 ms of every child's start.
    comm = name.encode(errors='replace')[:15].decode(errors='ignore').encode()
    try:
        fd = os.open('/proc/self/comm', os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return  # no /proc: a name is a convenience
    try:
        os.write(fd, comm)
    except OSError:
        pass
    finally:
        os.close(fd)


def flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def forget_imports_in_flight() -> list[str]:
    """Forget the imports other threads had in flight at the fork; their names.

    A fork copies importlib's per-module locks as they were: one held by a
    parent thread that was running a module's body stays held in the child,
    by a thread the child does not have, and the module sits half-run in
    ``sys.modules``. Dropping both makes the child's next import of that
    module run it afresh. Call in the child before anything else imports.
    """
    import _thread
    from importlib import _bootstrap

    me = _thread.get_ident()
    module_locks: dict[str, Any] = _bootstrap._module_locks  # type: ignore[attr-defined]
    forgotten = []
    for name, ref in list(module_locks.items()):
        lock = ref()
        owner = getattr(lock, 'owner', None)
        if owner is None or owner == me:
            continue
        del module_locks[name]
        module = sys.modules.get(name)
        if getattr(getattr(module, '__spec__', None), '_initializing', False):
            del sys.modules[name]
        forgotten.append(name)
    return forgotten


def run_child_prelude(*, keep_fds: Iterable[int], stdio: ResolvedStdio) -> None:
    forget_imports_in_flight()
    release_inherited_fds(keep_fds)
    reset_signal_state()
    apply_stdio_policy(stdio)
    rebind_std_streams()
