"""What an actor leaves in modules that outlive it, forgotten before its
interpreter hosts the next actor.

An in-process actor's interpreter may be recycled for another actor
(``spawn.pool._interpreters``): the modules loaded before the first actor ran
stay, so state they keep on behalf of one actor (a cache keyed by its
functions, a table of its types) would reach the next one, and would keep
the last actor's modules alive. A module with such state registers a
function here that forgets it; ``_subint_host.recycle_subint`` runs them all
inside the interpreter, after the actor's own modules were dropped from
``sys.modules``. Stdlib only, imported by nothing that a process needs
otherwise.
"""
from __future__ import annotations

from collections.abc import Callable

_forgetters: list[Callable[[], None]] = []


def forget_on_recycle[F: Callable[[], None]](forget: F) -> F:
    """Run ``forget`` whenever this interpreter is recycled for another
    actor (usable as a decorator)."""
    _forgetters.append(forget)
    return forget


def forget_actor_leftovers() -> None:
    """Run every registered ``forget``, in the order registered."""
    for forget in _forgetters:
        forget()
