"""A small actor runtime with tractor's names and semantics.

``open_nursery`` spawns actors through the selected spawn backend, ``Portal``
talks to one of them, ``current_actor`` says who is running. Layout: messages
(``_msgs``) and their codec (``_codec``) over a framed channel (``_channel``);
the child side in ``_actor`` and its one boot path in ``_boot``; the parent
side in ``_portal`` and ``_supervise``.
"""
from ._actor import Actor
from ._errors import ActorFailure, RemoteActorError
from ._portal import MsgStream, Portal
from ._state import current_actor
from ._supervise import (
    CANCEL_ACK_TIMEOUT,
    CANCEL_EXIT_TIMEOUT,
    TERMINATE_TIMEOUT,
    ActorNursery,
    open_nursery,
)

__all__ = [
    'CANCEL_ACK_TIMEOUT',
    'CANCEL_EXIT_TIMEOUT',
    'TERMINATE_TIMEOUT',
    'Actor',
    'ActorFailure',
    'ActorNursery',
    'MsgStream',
    'Portal',
    'RemoteActorError',
    'current_actor',
    'open_nursery',
]
