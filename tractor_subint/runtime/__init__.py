"""A small actor runtime with tractor's names and semantics.

``open_nursery`` spawns actors through the selected spawn backend, ``Portal``
talks to one of them, ``current_actor`` says who is running. Layout: messages
(``_msgs``) and their codec (``_codec``) over a framed channel (``_channel``);
the boot payload (``_bootspec``, plain JSON); the child side in ``_actor``
and its one boot path in ``_boot``; the parent side: ``_supervise`` (the
nursery), ``_child`` (one child's lifecycle), ``_portal`` (its RPC face)
and ``_calls`` (reply routing).

Names are imported on first use (see ``tractor_subint._lazy``): an
interpreter that cannot load msgspec (an isolated subinterpreter) can still
read a boot spec.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module

__all__ = [
    'CANCEL_ACK_TIMEOUT',
    'CANCEL_EXIT_TIMEOUT',
    'MAX_FRAME',
    'TERMINATE_TIMEOUT',
    'Actor',
    'ActorCancelled',
    'ActorFailure',
    'ActorNursery',
    'BroadcastReceiver',
    'Context',
    'ContextCancelled',
    'FrameTooLarge',
    'MsgStream',
    'MsgTypeError',
    'PendingCall',
    'Portal',
    'RemoteActorError',
    'StreamOverrun',
    'UnguardedMainError',
    'ValueDecodeError',
    'context',
    'current_actor',
    'find_actor',
    'get_registry',
    'is_root_process',
    'open_nursery',
    'open_root_actor',
    'pause',
    'post_mortem',
    'register_payload_type',
    'wait_for_actor',
]

if TYPE_CHECKING:
    from ._actor import Actor as Actor
    from ._channel import MAX_FRAME as MAX_FRAME
    from ._channel import FrameTooLarge as FrameTooLarge
    from ._child import CANCEL_ACK_TIMEOUT as CANCEL_ACK_TIMEOUT
    from ._child import CANCEL_EXIT_TIMEOUT as CANCEL_EXIT_TIMEOUT
    from ._child import TERMINATE_TIMEOUT as TERMINATE_TIMEOUT
    from ._context import Context as Context
    from ._context import context as context
    from ._debug import pause as pause
    from ._debug import post_mortem as post_mortem
    from ._discovery import find_actor as find_actor
    from ._discovery import get_registry as get_registry
    from ._discovery import wait_for_actor as wait_for_actor
    from ._errors import ActorCancelled as ActorCancelled
    from ._errors import ActorFailure as ActorFailure
    from ._errors import ContextCancelled as ContextCancelled
    from ._errors import MsgTypeError as MsgTypeError
    from ._errors import RemoteActorError as RemoteActorError
    from ._errors import StreamOverrun as StreamOverrun
    from ._errors import ValueDecodeError as ValueDecodeError
    from ._payloads import register_payload_type as register_payload_type
    from ._portal import PendingCall as PendingCall
    from ._portal import Portal as Portal
    from ._root import is_root_process as is_root_process
    from ._root import open_root_actor as open_root_actor
    from ._state import current_actor as current_actor
    from ._streaming import BroadcastReceiver as BroadcastReceiver
    from ._streaming import MsgStream as MsgStream
    from ._supervise import ActorNursery as ActorNursery
    from ._supervise import open_nursery as open_nursery
    from ._targets import UnguardedMainError as UnguardedMainError

__getattr__, __dir__ = lazy_module(__name__, {
    '._actor': ('Actor',),
    '._channel': ('MAX_FRAME', 'FrameTooLarge'),
    '._child': ('CANCEL_ACK_TIMEOUT', 'CANCEL_EXIT_TIMEOUT', 'TERMINATE_TIMEOUT'),
    '._context': ('Context', 'context'),
    '._debug': ('pause', 'post_mortem'),
    '._discovery': ('find_actor', 'get_registry', 'wait_for_actor'),
    '._errors': (
        'ActorCancelled', 'ActorFailure', 'ContextCancelled', 'MsgTypeError', 'RemoteActorError',
        'StreamOverrun', 'ValueDecodeError',
    ),
    '._portal': ('PendingCall', 'Portal'),
    '._payloads': ('register_payload_type',),
    '._root': ('is_root_process', 'open_root_actor'),
    '._state': ('current_actor',),
    '._streaming': ('BroadcastReceiver', 'MsgStream'),
    '._supervise': ('ActorNursery', 'open_nursery'),
    '._targets': ('UnguardedMainError',),
})
