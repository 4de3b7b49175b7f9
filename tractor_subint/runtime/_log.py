"""The runtime's logger, ``tractor_subint``.

Set ``TRACTOR_SUBINT_LOG=debug`` (or ``info``) to get the spawn, handshake
and cancellation steps of every actor of a tree on stderr, each line tagged
with the process id and the actor's name.
"""
from __future__ import annotations

import logging
import os

LOG_ENV = 'TRACTOR_SUBINT_LOG'

log = logging.getLogger('tractor_subint')

_actor_name = '-'
"""The running actor's name, as ``_state`` tells it (per interpreter)."""


def set_actor_name(name: str | None) -> None:
    global _actor_name
    _actor_name = name or '-'


class _ActorTag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.actor = _actor_name
        return True


def _configure_from_env() -> None:
    level = os.environ.get(LOG_ENV)
    if not level or log.handlers:
        return
    handler = logging.StreamHandler()
    handler.addFilter(_ActorTag())
    handler.setFormatter(logging.Formatter(
        '%(relativeCreated)8.1fms %(process)d %(actor)s %(levelname)s: %(message)s'
    ))
    log.addHandler(handler)
    log.setLevel(level.upper())


_configure_from_env()
