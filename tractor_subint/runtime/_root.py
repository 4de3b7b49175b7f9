"""The root actor: the first actor of a tree, in the program's own ``trio.run()``.

:func:`open_root_actor` starts it explicitly; the first ``open_nursery()``
of a program starts one implicitly, for as long as that nursery is open.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from ..log import enable_console
from ..spawn import try_set_start_method, validate_start_method
from ._actor import Actor
from ._debug import crash_repl, install_breakpoint_hook
from ._discovery import check_transports
from ._state import current_actor_or_none, set_current_actor


@asynccontextmanager
async def open_root_actor(
    *,
    name: str = 'root',
    loglevel: str | int | None = None,
    start_method: str | None = None,
    debug_mode: bool = False,
    enable_transports: Sequence[str] | None = None,
) -> AsyncIterator[Actor]:
    """Run the block as the root actor of a new tree (``current_actor()``
    is it; nurseries opened inside spawn its children).

    ``loglevel`` turns the console log on at that level (``'info'``,
    ``'cancel'``, ...; see ``tractor_subint.log``), for this actor and,
    through their boot, its children. ``start_method`` sets the default spawn
    backend of the process (``try_set_start_method``). ``debug_mode`` is
    described in the README ("Debug mode"). ``enable_transports`` is
    accepted when it asks for what actors here speak: ``['uds']``.
    """
    check_transports(enable_transports)
    running = current_actor_or_none()
    if running is not None:
        raise RuntimeError(
            f'{running!r} already runs here: open_root_actor() starts a tree, and the root of '
            f'one is open (nurseries opened inside it spawn its children)'
        )
    if start_method is not None:
        try_set_start_method(validate_start_method(start_method))
    actor = await _new_root(name, loglevel, debug_mode)
    try:
        async with _crash_repl(actor):
            yield actor
    finally:
        await _let_go(actor)


@asynccontextmanager
async def holding_root(
    *, loglevel: str | int | None = None, debug_mode: bool = False,
) -> AsyncIterator[Actor]:
    """For a nursery: the actor running here, or, outside any, a new root
    actor (implicit: it lives until the last nursery holding it ends, so
    sibling nurseries share it)."""
    actor = current_actor_or_none()
    if actor is None:
        actor = await _new_root('root', loglevel, debug_mode)
    else:
        if debug_mode and not actor.debug_mode:
            actor.debug_mode = True
            if actor.is_root:
                actor.undo_breakpoint_hook = install_breakpoint_hook()
        if actor.is_root:
            actor.holders += 1
    try:
        async with _crash_repl(actor):
            yield actor
    finally:
        if actor.is_root:
            await _let_go(actor)


@asynccontextmanager
async def _crash_repl(actor: Actor) -> AsyncIterator[None]:
    """(Debug mode, the root) A REPL on an error leaving the block, before it
    goes on up."""
    try:
        yield
    except Exception as exc:
        if actor.debug_mode and actor.is_root and actor.holders <= 1:
            await crash_repl(actor, exc)
        raise


async def _new_root(name: str, loglevel: str | int | None, debug_mode: bool) -> Actor:
    if loglevel is not None:
        enable_console(loglevel)
    actor = Actor.new_root(name)
    actor.debug_mode = bool(debug_mode)
    if debug_mode:
        actor.undo_breakpoint_hook = install_breakpoint_hook()
    actor.holders = 1
    set_current_actor(actor)
    try:
        await actor.start_root_services()
    except BaseException:
        set_current_actor(None)
        with trio.CancelScope(shield=True):
            await actor.aclose()
        raise
    return actor


async def _let_go(actor: Actor) -> None:
    """One holder of the root is done; the last one ends it."""
    actor.holders -= 1
    if actor.holders > 0:
        return
    if actor.undo_breakpoint_hook is not None:
        actor.undo_breakpoint_hook()
    with trio.CancelScope(shield=True):
        await actor.stop_root_services()
        set_current_actor(None)
        await actor.aclose()


def is_root_process() -> bool:
    """Whether this code runs in the root actor of its tree (or outside any
    actor: a program that is about to open one). An actor spawned by any
    backend, the in-process ``subint`` included, is not the root."""
    actor = current_actor_or_none()
    return actor is None or actor.is_root
