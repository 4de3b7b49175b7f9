"""Booting politely: a subinterpreter's boot never competes with the foreground.

Booting a subinterpreter-hosted actor (creating the interpreter, importing
trio, msgspec and the runtime in it) costs 150-250 ms of CPU. On a machine
with few cores, several boots at once (a burst of spawns, a warm pool
refilling) took the CPU from the spawning parent: its event loop stalled
30-100 ms (2 cores, 8 at once). So the import runs on a thread of its own
at a lower priority, and the actor itself, started afterwards by another
thread, runs at normal priority:

- a boot somebody waits for (a cold child's, or a warm pool member's once
  a spawn has claimed it) runs at nice :data:`BOOT_NICE`: it still gets
  most of a core when the parent does not want one, and a share of it
  beside other programs;
- a warm pool member's boot that nobody waits for yet runs under
  ``SCHED_IDLE``: only on a core nothing else wants. A spawn that claims it
  moves it to nice :data:`BOOT_NICE` (:func:`hurry`).

Leaving ``SCHED_IDLE`` needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` of at
least ``20 - BOOT_NICE`` (Linux lets anyone lower a priority, not raise it
back); where the owner may not, members boot at nice :data:`BOOT_NICE` from
the start (:func:`can_hurry`), as a member a spawn waits for must never lag
a cold child.
"""
from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable

BOOT_NICE = 10
"""The nice value of a boot somebody waits for (the parent runs at 0: it
gets ~90 % of a core both want)."""
_CAP_SYS_NICE = 23


def can_hurry() -> bool:
    """Whether this process may move a thread from ``SCHED_IDLE`` to nice
    :data:`BOOT_NICE` (and so may let pool members warm under ``SCHED_IDLE``)."""
    if not hasattr(os, 'SCHED_IDLE'):
        return False
    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    if soft == resource.RLIM_INFINITY or soft >= 20 - BOOT_NICE:
        return True
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('CapEff:'):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except OSError:
        pass
    return False


def lower_this_thread(*, idle: bool = False) -> None:
    """Put the calling thread at nice :data:`BOOT_NICE`, and under
    ``SCHED_IDLE`` if ``idle`` (lowering is always allowed). Only for a
    thread that ends after its work: it cannot be raised back."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BOOT_NICE)
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        pass  # a platform without them: boot at the caller's priority


def run_lowered[T](fn: Callable[[], T], *, idle: bool = False, name: str = 'tractor-subint-boot') -> T:
    """``fn()`` on a fresh thread lowered by :func:`lower_this_thread`;
    blocks until it returns, then returns what it returned (or raises)."""
    outcome: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        lower_this_thread(idle=idle)
        try:
            outcome.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return outcome[0]


def hurry(pid: int) -> None:
    """Move every ``SCHED_IDLE`` thread of process ``pid`` to nice
    :data:`BOOT_NICE` (a spawn now waits for it), as far as this process
    may: a thread that just ended, or a refusal, is skipped."""
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return  # gone
    for tid in tids:
        try:
            if os.sched_getscheduler(int(tid)) == os.SCHED_IDLE:
                os.sched_setscheduler(int(tid), os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
