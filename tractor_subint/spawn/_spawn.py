"""The spawn-method registry: which backend starts a child.

Backends are looked up in :data:`_methods` at call time, so a backend module
(or an adapter, later) can register itself without touching this file.
"""
from __future__ import annotations

import os
import sys
from typing import Literal, NoReturn, get_args

from ._contract import SpawnFn, SpawnRequest
from ._subint_fork import subint_fork_proc

SpawnMethodKey = Literal[
    'trio',
    'main_thread_forkserver',
    'subint_forkserver',
    'subint',
    'subint_fork',
]
SPAWN_METHOD_KEYS: tuple[SpawnMethodKey, ...] = get_args(SpawnMethodKey)

# What each key needs from the platform; checked by try_set_start_method().
_NEEDS_FORK = frozenset({'main_thread_forkserver', 'subint_forkserver', 'subint_fork'})
_NEEDS_SUBINTERPRETERS = frozenset({'subint_forkserver', 'subint', 'subint_fork'})


def _not_available_yet(key: SpawnMethodKey) -> SpawnFn:
    async def spawn(request: SpawnRequest) -> NoReturn:
        raise NotImplementedError(
            f'spawn method {key!r} is not available yet: its backend arrives '
            f'with the actor runtime. Until then, the fork and subinterpreter '
            f'primitives are in tractor_subint.spawn._subint_forkserver.'
        )
    spawn.__name__ = spawn.__qualname__ = f'{key}_proc'
    return spawn


_methods: dict[SpawnMethodKey, SpawnFn] = {
    'trio': _not_available_yet('trio'),
    'main_thread_forkserver': _not_available_yet('main_thread_forkserver'),
    'subint_forkserver': _not_available_yet('subint_forkserver'),
    'subint': _not_available_yet('subint'),
    'subint_fork': subint_fork_proc,
}

_spawn_method: SpawnMethodKey = 'trio'


def unsupported_reason(key: SpawnMethodKey) -> str | None:
    """Why ``key`` cannot work on this Python/platform, or None if it can."""
    if key in _NEEDS_FORK and not hasattr(os, 'fork'):
        return f'{key!r} needs os.fork(), which this platform ({sys.platform}) lacks'
    if key in _NEEDS_SUBINTERPRETERS:
        try:
            import _interpreters  # noqa: F401
        except ImportError:
            return (
                f'{key!r} needs subinterpreters (the _interpreters module, '
                f'CPython >= 3.13); this is {sys.implementation.name} '
                f'{sys.version.split()[0]}'
            )
    return None


def try_set_start_method(key: str) -> SpawnMethodKey:
    """Select the spawn method for this process; return the key.

    Raises :class:`ValueError` for an unknown key (naming the valid ones) and
    :class:`RuntimeError` when this Python or platform cannot run it.
    """
    global _spawn_method
    if key not in SPAWN_METHOD_KEYS:
        raise ValueError(
            f'unknown spawn method {key!r}; valid keys: {", ".join(SPAWN_METHOD_KEYS)}'
        )
    reason = unsupported_reason(key)  # type: ignore[arg-type]
    if reason is not None:
        raise RuntimeError(f'cannot use spawn method {key!r}: {reason}')
    _spawn_method = key  # type: ignore[assignment]
    return _spawn_method


def current_start_method() -> SpawnMethodKey:
    return _spawn_method


def get_spawn_fn(key: SpawnMethodKey | None = None) -> SpawnFn:
    """The backend registered for ``key`` (default: the selected method)."""
    return _methods[key or _spawn_method]

