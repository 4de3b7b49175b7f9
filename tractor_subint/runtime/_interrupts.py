"""Ctrl-C reaches the caller as a plain :class:`KeyboardInterrupt`.

trio raises ``KeyboardInterrupt`` in whatever the main task is doing; when
that is the body of a nursery (ours, run inside ``cancel()`` or the kill
ladder, or the user's own), the nursery wraps it in a
``BaseExceptionGroup``. In a terminal, Ctrl-C also reaches every actor of
the tree at once: their exits (status 130) and the calls they cut short
become more errors next to it. None of that is news to someone who pressed
Ctrl-C: what they should get is the ``KeyboardInterrupt``, and status 130.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ._errors import ActorFailure

SIGINT_EXIT_CODES = (130, -2)
"""An actor ended by SIGINT: the shell convention, or killed by the signal."""


def ended_by_sigint(error: BaseException) -> bool:
    """Whether ``error`` is an actor's (or a call's) end by a SIGINT."""
    status = error.exit_status if isinstance(error, ActorFailure) else None
    return status is not None and status.returncode in SIGINT_EXIT_CODES


def _caused_by_interrupt(error: BaseException) -> bool:
    """What a Ctrl-C brings along: cancellations, actors ended by the same
    SIGINT, and calls cut short because the runtime was stopping their actor."""
    if isinstance(error, trio.Cancelled) or ended_by_sigint(error):
        return True
    return isinstance(error, ActorFailure) and error.stop_requested


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def plain_interrupt(error: BaseException) -> BaseException:
    """``error``, or the ``KeyboardInterrupt`` inside it when ``error`` is a
    group of nothing but that interrupt and what it brought along."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    interrupts = []
    for leaf in _leaves(error):
        if isinstance(leaf, KeyboardInterrupt):
            interrupts.append(leaf)
        elif not _caused_by_interrupt(leaf):
            return error
    if not interrupts:
        return error
    # Raised again later while the group is being handled: the group would
    # show as its context, which is exactly the noise this removes.
    interrupts[0].__suppress_context__ = True
    return interrupts[0]


@contextmanager
def interrupts_unwrapped() -> Iterator[None]:
    """Around an internal nursery the caller's task runs: a Ctrl-C that lands
    inside comes out as itself, not in a group."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = plain_interrupt(group)
        if error is group:
            raise
        raise error from None
