"""Spawn backends behind one registry, and the primitives they share.

Nothing here knows about actors: see :mod:`tractor_subint.spawn._contract`.
"""
from ._contract import ProcessHandle, SpawnRequest
from ._spawn import (
    SPAWN_METHOD_KEYS,
    SpawnMethodKey,
    current_start_method,
    get_spawn_fn,
    try_set_start_method,
)

__all__ = [
    'SPAWN_METHOD_KEYS',
    'ProcessHandle',
    'SpawnMethodKey',
    'SpawnRequest',
    'current_start_method',
    'get_spawn_fn',
    'try_set_start_method',
]
