"""In-process actors that cannot be ended, and the bounded exit that ends
the process around them.

An actor of the ``subint`` backend is a thread running a subinterpreter of
this process. Nothing ends a thread from outside: an actor stuck in a
blocking call ends when the call returns, and a subinterpreter whose code
left a non-daemon thread running cannot be destroyed until that thread
returns. Left alone, either keeps the process from exiting after its main
code is done (the interpreter's shutdown joins its threads, for ever).

So the process's exit is bounded: at shutdown (before the interpreter joins
its threads), whatever still holds it gets :func:`exit_grace` seconds to end;
then the process prints what holds it (the actor, its thread, the call or
the threads that hold that) and ends with ``os._exit(UNENDED_EXIT)``. The
kill ladder uses the same grace before it gives an in-process actor up
(``runtime._child``). ``TRACTOR_SUBINT_INPROCESS_GRACE=inf`` opts out: wait
for ever, as a process waits for its threads.
"""
from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

GRACE_ENV = 'TRACTOR_SUBINT_INPROCESS_GRACE'
DEFAULT_GRACE = 5.0
"""Seconds an in-process actor (or a subinterpreter's left-over threads) gets
to end after it was asked to, at the kill ladder's end and at process exit."""

UNENDED_EXIT = 70
"""The exit status of a process ended by :func:`os._exit` because an
in-process actor could not be ended (``EX_SOFTWARE``)."""


def exit_grace() -> float:
    """:data:`DEFAULT_GRACE`, or ``$TRACTOR_SUBINT_INPROCESS_GRACE`` (seconds;
    ``inf`` waits for ever)."""
    text = os.environ.get(GRACE_ENV, '').strip()
    if not text:
        return DEFAULT_GRACE
    try:
        grace = float(text)
    except ValueError:
        raise ValueError(f'{GRACE_ENV} must be a number of seconds or "inf", not {text!r}') from None
    if math.isnan(grace) or grace < 0:
        raise ValueError(f'{GRACE_ENV} must be >= 0 seconds or "inf", not {text!r}')
    return grace


@dataclass
class _Host:
    """An in-process actor's thread, and what it is busy with, as its
    supervisor last said (``holding``)."""

    name: str
    thread: threading.Thread
    holding: Callable[[], str | None] | None = None
    """What its supervisor says it is busy with (its unanswered calls)."""
    left: Callable[[], str | None] | None = None
    """Which non-daemon threads its code left running, if it ended."""

_hosts: dict[int, _Host] = {}
_stranded: dict[int, str] = {}
"""Subinterpreters left alive because threads their code started still
run: interpreter id -> what (which actor, which threads)."""
_retries: dict[int, Callable[[float], bool]] = {}
"""How to try each one's teardown again (given a timeout; True once gone)."""
_lock = threading.Lock()
_guard_installed = False


def track(name: str, thread: threading.Thread) -> _Host:
    """Count ``thread`` (an in-process actor's) among what must end before the
    process may exit, until :func:`untrack`."""
    host = _Host(name, thread)
    with _lock:
        _hosts[id(host)] = host
    _install_exit_guard()
    return host


def untrack(host: _Host) -> None:
    with _lock:
        _hosts.pop(id(host), None)


def strand(interp_id: int, what: str, retry: Callable[[float], bool]) -> None:
    """Subinterpreter ``interp_id`` is left alive: ``what`` still runs in it;
    ``retry(timeout)`` tries its teardown again (True once it is gone)."""
    with _lock:
        _stranded[interp_id] = what
        _retries[interp_id] = retry
    _install_exit_guard()


def label_stranded(interp_id: int, label: str) -> None:
    """Say whose subinterpreter ``interp_id`` is, if it was left alive."""
    with _lock:
        if interp_id in _stranded:
            _stranded[interp_id] = f'{label}: {_stranded[interp_id]}'


def unstrand(interp_id: int) -> None:
    with _lock:
        _stranded.pop(interp_id, None)
        _retries.pop(interp_id, None)


def _install_exit_guard() -> None:
    global _guard_installed
    with _lock:
        if _guard_installed:
            return
        _guard_installed = True
    # Run by threading._shutdown() before it joins the process's non-daemon
    # threads (and before the subinterpreters are finalised): the last
    # moment at which the process can still choose to end.
    try:
        threading._register_atexit(_bounded_exit)  # type: ignore[attr-defined]
    except RuntimeError:
        pass  # already shutting down


def holders() -> list[str]:
    """What keeps the process from exiting now, one line each."""
    with _lock:
        hosts = [h for h in _hosts.values() if h.thread.is_alive()]
        stranded = dict(_stranded)
    lines = []
    for host in hosts:
        holding = host.holding() if host.holding is not None else None
        left = host.left() if host.left is not None else None
        if left and not holding:
            holding = (
                f'has ended, but its code left non-daemon threads {left} running, which its '
                f'subinterpreter waits for'
            )
        lines.append(
            f"in-process actor {host.name!r} (thread {host.thread.name!r}) "
            f"{holding or 'has not ended'}"
        )
    for interp_id, what in stranded.items():
        lines.append(f'subinterpreter {interp_id}: {what}')
    return lines


def _bounded_exit() -> None:
    grace = exit_grace()
    if not holders():
        return
    if math.isinf(grace):
        # Opted out: wait for ever, as a process waits for its threads, and
        # destroy what they kept alive once they end (a subinterpreter left
        # alive would hold the interpreter's own finalisation for ever).
        while holders():
            _wait_for_hosts(_LONG_WAIT)
            _retry_stranded(_LONG_WAIT)
        return
    _wait_for_hosts(grace)
    _retry_stranded(grace)
    left = holders()
    if not left:
        return
    listing = ''.join(f'\n  - {line}' for line in left)
    print(
        f'tractor_subint: the process cannot exit: an in-process actor cannot be killed, and '
        f'these did not end within {grace:g} s:{listing}\n'
        f'Ending the process now (os._exit({UNENDED_EXIT})). Set {GRACE_ENV}=inf to wait '
        f'for them instead.',
        file=sys.stderr, flush=True,
    )
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os._exit(UNENDED_EXIT)


_LONG_WAIT = 3600.0
"""One round of an infinite wait (a thread's join takes no infinite timeout)."""


def _wait_for_hosts(grace: float) -> None:
    import time

    deadline = time.monotonic() + grace
    with _lock:
        threads = [h.thread for h in _hosts.values()]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _retry_stranded(grace: float) -> None:
    with _lock:
        retries = dict(_retries)
    for interp_id, retry in retries.items():
        if retry(grace):
            unstrand(interp_id)
