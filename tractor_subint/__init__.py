"""Spawn backends for structured-concurrency actor runtimes on trio, built on
CPython subinterpreters and a forkserver, with a small actor runtime.

The runtime's names are available here (``tractor_subint.open_nursery``, ...)
but imported lazily, so that ``tractor_subint.spawn`` alone (the primitives)
stays free of the runtime. Every error the package raises derives from
:class:`TractorSubintError`; the public ones are exported here.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._exceptions import ProtocolError, TractorSubintError
from ._lazy import lazy_module

__version__ = '0.1.0.dev0'

__all__ = [
    'Actor',
    'ActorCancelled',
    'ActorFailure',
    'ActorNursery',
    'BroadcastReceiver',
    'Context',
    'ContextCancelled',
    'ForkserverError',
    'FrameTooLarge',
    'MsgStream',
    'MsgTypeError',
    'Portal',
    'ProtocolError',
    'RemoteActorError',
    'SpawnMethodKey',
    'StreamOverrun',
    'SubintExecError',
    'SubinterpretersAliveError',
    'TractorSubintError',
    'UnguardedMainError',
    'ValueDecodeError',
    'context',
    'current_actor',
    'current_start_method',
    'find_actor',
    'get_registry',
    'is_root_process',
    'log',
    'open_nursery',
    'open_root_actor',
    'pause',
    'post_mortem',
    'register_payload_type',
    'try_set_start_method',
    'wait_for_actor',
]

if TYPE_CHECKING:
    from . import log as log
    from .runtime import Actor as Actor
    from .runtime import ActorCancelled as ActorCancelled
    from .runtime import ActorFailure as ActorFailure
    from .runtime import ActorNursery as ActorNursery
    from .runtime import BroadcastReceiver as BroadcastReceiver
    from .runtime import Context as Context
    from .runtime import ContextCancelled as ContextCancelled
    from .runtime import FrameTooLarge as FrameTooLarge
    from .runtime import MsgStream as MsgStream
    from .runtime import MsgTypeError as MsgTypeError
    from .runtime import Portal as Portal
    from .runtime import RemoteActorError as RemoteActorError
    from .runtime import StreamOverrun as StreamOverrun
    from .runtime import UnguardedMainError as UnguardedMainError
    from .runtime import ValueDecodeError as ValueDecodeError
    from .runtime import context as context
    from .runtime import current_actor as current_actor
    from .runtime import find_actor as find_actor
    from .runtime import get_registry as get_registry
    from .runtime import is_root_process as is_root_process
    from .runtime import open_nursery as open_nursery
    from .runtime import open_root_actor as open_root_actor
    from .runtime import pause as pause
    from .runtime import post_mortem as post_mortem
    from .runtime import register_payload_type as register_payload_type
    from .runtime import wait_for_actor as wait_for_actor
    from .spawn import SpawnMethodKey as SpawnMethodKey
    from .spawn import SubinterpretersAliveError as SubinterpretersAliveError
    from .spawn import SubintExecError as SubintExecError
    from .spawn import current_start_method as current_start_method
    from .spawn import try_set_start_method as try_set_start_method
    from .spawn.forkserver import ForkserverError as ForkserverError

__getattr__, __dir__ = lazy_module(__name__, {
    '.runtime': (
        'Actor', 'ActorCancelled', 'ActorFailure', 'ActorNursery', 'BroadcastReceiver', 'Context',
        'ContextCancelled', 'FrameTooLarge', 'MsgStream', 'MsgTypeError',
        'Portal', 'RemoteActorError', 'StreamOverrun', 'UnguardedMainError', 'ValueDecodeError',
        'context', 'current_actor',
        'find_actor', 'get_registry', 'is_root_process', 'open_nursery', 'open_root_actor',
        'pause', 'post_mortem', 'register_payload_type', 'wait_for_actor',
    ),
    '.spawn': (
        'SpawnMethodKey', 'SubintExecError', 'SubinterpretersAliveError', 'current_start_method',
        'try_set_start_method',
    ),
    '.spawn.forkserver': ('ForkserverError',),
    '.log': ('log',),
})
