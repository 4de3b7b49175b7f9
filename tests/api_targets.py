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


# -- typed errors ------------------------------------------------------------------

class QuotaExceeded(Exception):
    """An error whose constructor does not take its own ``args`` back."""

    def __init__(self, user: str, limit: int) -> None:
        super().__init__(f'{user} is over their quota of {limit}')
        self.user = user
        self.limit = limit
        self.opaque = object()  # not plain data: stays behind


class Outer:
    class NestedError(LookupError):
        """An error class nested in a class (a dotted qualname)."""


def raise_quota(user: str, limit: int) -> None:
    raise QuotaExceeded(user, limit)


def raise_key(key: str) -> None:
    raise KeyError(key)


def raise_nested() -> None:
    error = Outer.NestedError('deep', 7)
    error.add_note('a note that travels')
    raise error


async def relay_quota(user: str, limit: int) -> None:
    """Spawn a child that raises :class:`QuotaExceeded`; its error is
    relayed (as a RemoteActorError) to whoever called this."""
    import tractor_subint as ts

    async with ts.open_nursery() as an:
        portal = await an.start_actor('quota_keeper', enable_modules=['api_targets'])
        await portal.run(raise_quota, user=user, limit=limit)
