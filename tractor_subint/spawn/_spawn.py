"""The spawn-method registry: which backend starts a child.

Backends are looked up in :data:`_methods` at call time, so a backend module
(or an adapter, later) can register itself without touching this file.
"""
from __future__ import annotations

import os
import sys
from typing import Literal, NoReturn, get_args

from ._contract import SpawnFn, SpawnRequest
from ._main_thread_forkserver import main_thread_forkserver_proc
from ._subint_fork import subint_fork_proc
from ._subint_forkserver import subint_forkserver_proc
from ._trio import trio_proc

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
            f'spawn method {key!r} is not available yet: it is reserved for the '
            f'in-process subinterpreter backend. Working methods: '
            f'{", ".join(_WORKING)}.'
        )
    spawn.__name__ = spawn.__qualname__ = f'{key}_proc'
    return spawn


_methods: dict[SpawnMethodKey, SpawnFn] = {
    'trio': trio_proc,
    'main_thread_forkserver': main_thread_forkserver_proc,
    'subint_forkserver': subint_forkserver_proc,
    'subint': _not_available_yet('subint'),
    'subint_fork': subint_fork_proc,
}

ENV_VAR = 'TRACTOR_SUBINT_SPAWN_METHOD'
"""Environment variable naming the default spawn method of a process tree."""
DEFAULT_METHOD: SpawnMethodKey = 'trio'

_WORKING = ('trio', 'main_thread_forkserver', 'subint_forkserver')
_RESERVED: dict[str, str] = {
    'subint': 'reserved for the in-process subinterpreter backend (a later release)',
    'subint_fork': 'a documented dead end: ai/conc-anal/subint_fork_blocked_by_cpython_post_fork.md',
}

_spawn_method: SpawnMethodKey | None = None  # None: follow ENV_VAR, then DEFAULT_METHOD


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


def available_start_methods() -> tuple[SpawnMethodKey, ...]:
    """Keys whose backend can spawn actors on this Python and platform."""
    return tuple(k for k in _WORKING if unsupported_reason(k) is None)  # type: ignore[misc]


def unusable_reason(key: str) -> str | None:
    """Why ``key`` cannot spawn actors here (unknown, reserved, unsupported),
    or None if it can."""
    if key not in SPAWN_METHOD_KEYS:
        return f'unknown spawn method {key!r}'
    if key in _RESERVED:
        return f'spawn method {key!r} is {_RESERVED[key]}'
    return unsupported_reason(key)  # type: ignore[arg-type]


def validate_start_method(key: str) -> SpawnMethodKey:
    """``key`` if it is a known key this platform supports, else raise like
    :func:`try_set_start_method` (without selecting it)."""
    if key not in SPAWN_METHOD_KEYS:
        raise ValueError(
            f'unknown spawn method {key!r}; valid keys: {", ".join(SPAWN_METHOD_KEYS)}'
        )
    reason = unsupported_reason(key)  # type: ignore[arg-type]
    if reason is not None:
        raise RuntimeError(f'cannot use spawn method {key!r}: {reason}')
    return key  # type: ignore[return-value]


def try_set_start_method(key: str) -> SpawnMethodKey:
    """Select the spawn method for this process; return the key.

    Raises :class:`ValueError` for an unknown key (naming the valid ones) and
    :class:`RuntimeError` when this Python or platform cannot run it.
    """
    global _spawn_method
    _spawn_method = validate_start_method(key)
    return _spawn_method


def current_start_method() -> SpawnMethodKey:
    """The method :func:`try_set_start_method` selected, else the one named
    by ``$TRACTOR_SUBINT_SPAWN_METHOD``, else ``'trio'``."""
    if _spawn_method is not None:
        return _spawn_method
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        try:
            return validate_start_method(from_env)
        except (ValueError, RuntimeError) as exc:
            raise type(exc)(f'${ENV_VAR}: {exc}') from None
    return DEFAULT_METHOD


def get_spawn_fn(key: SpawnMethodKey | None = None) -> SpawnFn:
    """The backend registered for ``key`` (default: the selected method)."""
    return _methods[key or current_start_method()]

