"""Per-interpreter runtime state: which actor this is.

Each actor runs one ``trio.run`` in one interpreter, so a module global is the
right scope: a subinterpreter has its own copy of this module.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..log import set_actor_name

if TYPE_CHECKING:
    from ._actor import Actor

_current_actor: Actor | None = None


def current_actor() -> Actor:
    """The actor running here; :class:`RuntimeError` outside the runtime."""
    if _current_actor is None:
        raise RuntimeError(
            'no actor runtime is running here: call this inside '
            'tractor_subint.open_nursery() or inside an actor'
        )
    return _current_actor


def current_actor_or_none() -> Actor | None:
    """The actor running here, or None outside the runtime."""
    return _current_actor


def set_current_actor(actor: Actor | None) -> None:
    """Make ``actor`` the one :func:`current_actor` returns here."""
    global _current_actor
    _current_actor = actor
    set_actor_name(actor.name if actor is not None else None)


def _forget_runtime_after_fork() -> None:
    # A child forked by any code (ours, multiprocessing's 'fork', os.fork) is
    # not the parent's actor. What it inherited stays untouched: our own forks
    # freeze it (spawn._fork), and a collection here would copy every page.
    set_current_actor(None)


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_runtime_after_fork)
