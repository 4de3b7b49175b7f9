"""The child side: an upstream tractor actor, booted by our child shell.

Our shell (``spawn._child_host``) runs :func:`upstream_child_main` on the
forked child's main thread (``main_thread_forkserver``: a keeper thread holds
the lifeline), or in a subinterpreter on a worker thread
(``subint_forkserver``, warm pool included: the child's main thread owns
signals and the lifeline). This function then becomes an upstream actor
exactly as upstream's own ``python -m tractor._child`` does: it calls
upstream's ``_actor_child_main``, which dials the parent's address.

Three things differ from an exec'd upstream child, and are handled here:

- On CPython 3.13.0, ``import tractor`` fails in a subinterpreter
  (gh-138192: ``contextvars.Token.MISSING`` is missing there, and tricycle
  reads it at import). :func:`_shim_token_missing` hands tricycle the real
  sentinel for the length of its import.
- A fork child inherits the parent's tractor state: the current actor, the
  runtime variables (``_is_root``...), ``Actor.lifetime_stack`` (a
  class-level stack whose callbacks must not run here) and the IPC server's
  peer table (a container shared by every ``Server``). They are forgotten
  (not run) before the actor is built.
- Signals reach the actor as bytes on ``cancel_fd`` (a forwarded SIGINT or
  SIGTERM, or the lifeline): a task the ``load_modules`` patch starts in
  the actor's service nursery turns one into ``Actor.cancel_soon()``.
- A ``subint_forkserver`` actor does not run on its process's main thread,
  which upstream assumes twice: ``enable_stack_on_sig()`` (asked for by ``enable_stack_on_sig=`` or
  ``debug_mode=``) installs a SIGUSR1 handler, which only the main thread
  may do: here it warns and does nothing, instead of crashing the actor at
  boot; ``set_actor_proctitle()`` names the calling thread, so the process
  name (``/proc/PID/comm``) is set to its title as well.
"""
from __future__ import annotations

import _interpreters
import contextvars
import json
import os
import sys
from contextlib import ExitStack
from typing import Any


def _shim_token_missing() -> None:
    """Import tricycle where ``contextvars.Token.MISSING`` is missing (a
    3.13.0 subinterpreter); a no-op elsewhere."""
    if hasattr(contextvars.Token, 'MISSING') or 'tricycle' in sys.modules:
        return
    real_token = contextvars.Token
    # The genuine sentinel: what a first set() of a fresh variable returns as old_value.
    missing = contextvars.ContextVar[object]('tractor_subint_probe').set(None).old_value
    contextvars.Token = type('Token', (), {'MISSING': missing})  # type: ignore[misc, assignment]
    try:
        import tricycle  # noqa: F401 (reads Token.MISSING once, at import)
    finally:
        contextvars.Token = real_token  # type: ignore[misc]


_shim_token_missing()

import msgspec  # noqa: E402
import trio  # noqa: E402
from tractor import _child  # noqa: E402
from tractor.ipc._server import Server  # noqa: E402
from tractor.log import get_logger  # noqa: E402
from tractor.runtime import _state  # noqa: E402
from tractor.runtime._runtime import Actor  # noqa: E402

from ..runtime import _testhooks  # noqa: E402
from ..spawn import (  # noqa: E402
    cancel_on_forwarded_signal,
    close_local_pools,
    current_tree,
    name_this_process,
)

log = get_logger('tractor')

cancel_fd: int | None = None
"""This actor's ``cancel_fd`` (set in the child; read by the patched
``load_modules``)."""


def _forget_inherited_state() -> None:
    """What a fork copied from the parent's tractor is not ours: forget it,
    without running any of it."""
    Actor.lifetime_stack = ExitStack()
    _state._current_actor = None
    _state._runtime_vars.clear()
    _state._runtime_vars.update(_state.get_runtime_vars(clear_values=True))
    # ``Server._peers`` defaults to one ``defaultdict`` that msgspec shares
    # between instances (it copies only plain empty containers): the parent's
    # peers, which this process's server would wait for at teardown.
    for field in msgspec.structs.fields(Server):
        if isinstance(field.default, dict):
            field.default.clear()


def _adapt_main_thread_features() -> None:
    """See the module docstring; nothing to adapt on the main thread
    (idempotent: a fork child of ours inherits its parent's wrappers)."""
    import threading

    from tractor import devx
    from tractor.devx import _proctitle

    if (threading.current_thread() is threading.main_thread()
            and _interpreters.get_current() == _interpreters.get_main()):
        return
    if getattr(devx.enable_stack_on_sig, '_tractor_subint', False):
        return

    def enable_stack_on_sig(*_args: Any, **_kwargs: Any) -> None:
        log.warning(
            'SIGUSR1 task-tree dumps (enable_stack_on_sig) are not available in '
            'an actor spawned by tractor_subint: it does not run on its '
            "process's main thread, where signal handlers must be installed"
        )

    set_title = _proctitle.set_actor_proctitle

    def set_actor_proctitle(actor: Actor, *args: Any, **kwargs: Any) -> str | None:
        title: str | None = set_title(actor, *args, **kwargs)
        if title is not None:
            name_this_process(title)
        return title

    enable_stack_on_sig._tractor_subint = True  # type: ignore[attr-defined]
    devx.enable_stack_on_sig = enable_stack_on_sig
    _proctitle.set_actor_proctitle = set_actor_proctitle


async def watch_cancel_fd(actor: Actor, fd: int) -> None:
    """In the actor's service nursery: a byte on ``fd`` cancels the actor
    (EOF, the host being done with us, does not)."""
    async with cancel_on_forwarded_signal(fd) as seen:
        await trio.sleep_forever()
    if seen.signum is not None:
        actor.cancel_soon()


def encode_spawn(uid: tuple[str, str], loglevel: str | None, parent_addr: Any, infect_asyncio: bool,
                 label: str) -> bytes:
    """The boot payload: what upstream passes a child on its command line."""
    return json.dumps({
        'uid': list(uid), 'loglevel': loglevel, 'parent_addr': parent_addr,
        'infect_asyncio': infect_asyncio, 'label': label,
    }).encode()


def _as_address(value: Any) -> Any:
    # JSON made tuples lists; upstream's addresses are tuples ((host, port)
    # for tcp, (dir, file) for uds).
    return tuple(value) if isinstance(value, list) else value


def upstream_child_main(payload: bytes, ipc_fd: int, cancel_fd_: int) -> None:
    """Become the upstream actor that ``payload`` describes (see the module
    docstring). ``ipc_fd`` is only the lifeline: the actor talks to its
    parent over upstream's own transport."""
    global cancel_fd
    from . import register

    spec = json.loads(payload)
    exit_code = _testhooks.exit_code('child_exit_before_ready')
    if exit_code is not None:
        os._exit(exit_code)
    register()  # a fresh subinterpreter has not seen the parent's patches
    cancel_fd = cancel_fd_
    _forget_inherited_state()
    _adapt_main_thread_features()
    tree = current_tree()
    if tree is not None:  # left with the actor, after the warm pools it started
        Actor.lifetime_stack.callback(tree.close)
        Actor.lifetime_stack.callback(close_local_pools)
    _child._actor_child_main(
        uid=tuple(spec['uid']),
        loglevel=spec['loglevel'],
        parent_addr=_as_address(spec['parent_addr']),
        infect_asyncio=spec['infect_asyncio'],
        spawn_method=spec['label'],
    )
