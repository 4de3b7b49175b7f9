"""Warming at idle CPU priority, so that it never competes with the foreground.

A member warms (creates its subinterpreter, imports trio and the runtime:
~150-250 ms of CPU) on a thread of its own that runs under ``SCHED_IDLE``:
the kernel gives it a core only when nothing else wants one, so a refill
(or a pool growing after a burst) never delays the spawning parent's event
loop or an actor booting beside it. The actor itself never runs there: its
thread is started later by the member's main thread, at normal priority.

A member claimed while still warming is raised back to normal priority by
its owner (:func:`raise_priority`), since a spawn now waits for it. Leaving
``SCHED_IDLE`` needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` of 20 (Linux
lets anyone lower a priority, not raise it back); where the owner has
neither, members warm at normal priority instead (:func:`can_raise_priority`),
as a warming member a spawn waits for must never lag a cold fork.
"""
from __future__ import annotations

import os
import resource

_CAP_SYS_NICE = 23


def can_raise_priority() -> bool:
    """Whether this process may move a thread of its own from ``SCHED_IDLE``
    back to normal priority (and so may let members warm at idle priority)."""
    if not hasattr(os, 'SCHED_IDLE'):
        return False
    soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    if soft == resource.RLIM_INFINITY or soft >= 20:
        return True
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('CapEff:'):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except OSError:
        pass
    return False


def lower_this_thread() -> None:
    """Put the calling thread under ``SCHED_IDLE`` (always allowed)."""
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def raise_priority(pid: int) -> None:
    """Put every thread of process ``pid`` back to normal priority, as far
    as this process may (a thread that just ended, or a refusal, is skipped)."""
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
