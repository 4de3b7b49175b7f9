"""The one boot path of every child actor.

:func:`actor_child_main` is the entry every backend runs (through
``spawn._child_host``), the same way in a fresh process, in a forked child's
main interpreter, or inside a fresh subinterpreter: its three arguments are
plain values that cross any of those boundaries.
"""
from __future__ import annotations

import importlib
import os
import socket
import sys

import trio

from .._exceptions import TractorSubintError
from ..log import configure_from_env, disable_console, enable_console, set_actor_name
from ..spawn import try_set_start_method
from . import _testhooks
from ._actor import Actor
from ._bootspec import BootSpec
from ._channel import MAX_FRAME, Channel
from ._codec import get_codec
from ._debug import install_breakpoint_hook
from ._discovery import listen
from ._errors import box_error
from ._msgs import BootFailed, Ready
from ._state import set_current_actor
from ._targets import parent_main

ENTRY = 'tractor_subint.runtime._boot:actor_child_main'


class ActorBootError(TractorSubintError, RuntimeError):
    """Raised in a child whose boot failed (after telling the parent why)."""


def actor_child_main(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Become the actor described by ``payload`` and serve until done."""
    spec = BootSpec.from_bytes(payload)
    set_actor_name(spec.name)
    if spec.log_level is not None:
        enable_console(spec.log_level)
    else:
        # As a fresh interpreter would be: a recycled one (in-process actors,
        # spawn.pool) may hold the console its last actor turned on.
        disable_console()
        configure_from_env()
    sys.path[:] = spec.sys_path
    try_set_start_method(spec.spawn_method)  # the default for this actor's children
    trio.run(_actor_main, spec, ipc_fd, cancel_fd)


def _load_modules(spec: BootSpec) -> None:
    for name in spec.enable_modules:
        if name == '__main__':
            parent_main(spec)
            continue
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if _SUBINT_REFUSAL not in str(exc):
                raise
            raise ImportError(
                f'enabled module {name!r} cannot load in this actor\'s isolated subinterpreter: '
                f'{exc} (an extension module without subinterpreter support, such as '
                f"msgspec's; run the actor in a legacy one: {_MODE_HINT})"
            ) from exc


_SUBINT_REFUSAL = 'does not support loading in subinterpreters'
_MODE_HINT = "spawn it with interpreter='legacy'"


async def _actor_main(spec: BootSpec, ipc_fd: int, cancel_fd: int) -> None:
    exit_code = _testhooks.exit_code('child_exit_before_ready')
    if exit_code is not None:
        os._exit(exit_code)
    chan = Channel.from_socket(
        socket.socket(fileno=ipc_fd), get_codec(spec.codec), max_frame=spec.max_frame or MAX_FRAME,
    )
    actor = Actor(spec.name, spec.uid, spec)
    actor.debug_mode = spec.debug_mode
    if spec.debug_mode:
        install_breakpoint_hook()  # the actor's interpreter ends with it
    set_current_actor(actor)
    listener = None
    try:
        try:
            _load_modules(spec)
            listener = await listen(spec.uid)  # peers find it once it is ready
        except Exception as exc:
            await chan.send(BootFailed(box_error(exc, spec.uid)))
            raise ActorBootError(f'actor {spec.name!r} failed to boot: {exc!r}') from exc
        await _testhooks.delay('child_before_ready')
        await chan.send(Ready(spec.uid, os.getpid()))
        await actor.serve(chan, cancel_fd, listener)
    finally:
        set_current_actor(None)
        await actor.aclose()
        with trio.CancelScope(shield=True):
            if listener is not None:
                await listener.aclose()
            await chan.aclose()
