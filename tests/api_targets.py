"""Module-level targets for the tests of tractor's core API (issue 18):
call cancellation, contexts and two-way streams, typed errors and payloads.

Importable as ``api_targets`` in every actor (``tests/`` is on ``sys.path``).
State kept here lives per actor (each actor imports its own copy), and the
functions that read it run in the actor, so the assertions they make are
made where the tasks ran.
"""
from __future__ import annotations

import trio

# -- call cancellation -----------------------------------------------------------

_tracked: dict[str, dict[int, str]] = {}
_changed = trio.Event()
_released: dict[str, trio.Event] = {}


def _notify() -> None:
    global _changed
    _changed.set()
    _changed = trio.Event()


def _release_event(key: str) -> trio.Event:
    return _released.setdefault(key, trio.Event())


async def tracked_call(key: str, index: int) -> int:
    """Run until :func:`release_tracked` (then return ``index``) or until
    cancelled; record which, under ``key``."""
    states = _tracked.setdefault(key, {})
    states[index] = 'running'
    _notify()
    try:
        await _release_event(key).wait()
    except trio.Cancelled:
        states[index] = 'cancelled'
        _notify()
        raise
    states[index] = 'finished'
    _notify()
    return index


async def wait_tracked(key: str, state: str, count: int) -> dict[int, str]:
    """Wait until ``count`` calls under ``key`` are in ``state``; return
    every call's state (the test bounds the wait)."""
    while sum(1 for s in _tracked.get(key, {}).values() if s == state) < count:
        await _changed.wait()
    return dict(_tracked[key])


def release_tracked(key: str) -> None:
    _release_event(key).set()


def tracked_states(key: str) -> dict[int, str]:
    return dict(_tracked.get(key, {}))
