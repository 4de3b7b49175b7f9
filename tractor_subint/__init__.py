"""Spawn backends for structured-concurrency actor runtimes on trio, built on
CPython subinterpreters and a forkserver, with a small actor runtime.

The runtime's names are available here (``tractor_subint.open_nursery``, ...)
but imported lazily, so that ``tractor_subint.spawn`` alone (the primitives)
stays free of the runtime.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = '0.1.0.dev0'

_RUNTIME_NAMES = frozenset({
    'Actor', 'ActorFailure', 'ActorNursery', 'MsgStream', 'Portal',
    'RemoteActorError', 'current_actor', 'open_nursery',
})
_SPAWN_NAMES = frozenset({'try_set_start_method', 'current_start_method', 'SpawnMethodKey'})

if TYPE_CHECKING:
    from .runtime import (  # noqa: F401
        Actor, ActorFailure, ActorNursery, MsgStream, Portal, RemoteActorError,
        current_actor, open_nursery,
    )
    from .spawn import SpawnMethodKey, current_start_method, try_set_start_method  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _RUNTIME_NAMES:
        from . import runtime

        return getattr(runtime, name)
    if name in _SPAWN_NAMES:
        from . import spawn

        return getattr(spawn, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = sorted(_RUNTIME_NAMES | _SPAWN_NAMES)
