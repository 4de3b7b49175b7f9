"""Where upstream tractor is patched, checked before anything is changed.

Upstream has no hook for external backends, but reads every relevant name
at call time, so rebinding module and class attributes is enough. Each
patch point is checked first (it exists, with the shape we rely on); any
mismatch raises :class:`UnsupportedTractor` naming what differs and the
upstream commit this adapter was built and tested against, before a single
attribute is changed.

The patch points (upstream ``main`` at :data:`SUPPORTED`):

- ``tractor.spawn._spawn``: ``SpawnMethodKey`` widened; ``_methods`` gets
  our coroutines; ``try_set_start_method`` accepts our keys (checking this
  Python can run them) and delegates the rest.
- ``tractor.runtime._runtime.Actor``: ``_from_parent`` receives the spawn
  spec only for the labels in a literal tuple, which lacks
  ``main_thread_forkserver``: our children are labelled as one that is in
  it for that call. ``load_modules`` applies the parent's ``__main__`` only
  for label ``'trio'``: our subinterpreter-hosted children need it too (their
  ``__main__`` is empty; a fork child's is the parent's). It also starts
  the task that turns a byte on ``cancel_fd`` into ``cancel_soon()``.
- ``tractor._root._DEBUG_COMPATIBLE_BACKENDS``: our keys are removed. Our
  children run trio off the main thread (the main thread owns signals), and
  upstream's debugger installs a SIGINT handler from the actor's thread.
- ``tractor._testing.pytest`` (when loaded): its own ``SpawnMethodKey`` is
  widened; our keys leave ``_CAPSYS_REQUIRED_SPAWNERS`` (our children take
  their stdio per policy and work under ``--capture=fd``);
  ``_is_forking_spawner`` is true for our forking keys.
"""
from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal, get_args

import msgspec

from .._exceptions import TractorSubintError
from ..spawn import Backend, get_backend

SUPPORTED = 'goodboy/tractor main at 3690e43a (2026-08-20)'
"""The upstream commit every patch point was checked against."""
OUR_KEYS = ('main_thread_forkserver', 'subint_forkserver', 'subint_fork')
SPEC_LABEL = 'subint_forkserver'
"""A label in ``Actor._from_parent``'s literal tuple other than ``'trio'``
(which would also turn on the ``__main__`` re-run a fork child must not do)."""
BACKEND_PARAMS = [
    'name', 'actor_nursery', 'subactor', 'errors', 'bind_addrs', 'parent_addr', '_runtime_vars',
    'infect_asyncio', 'task_status', 'proc_kwargs',
]
"""The parameters ``new_proc`` passes to a backend (upstream's ``trio_proc``)."""
CHILD_MAIN_PARAMS = ['uid', 'loglevel', 'parent_addr', 'infect_asyncio', 'spawn_method']

_ORIGINALS: dict[str, Any] = {}
"""What we replaced, as ``'module.name'`` (also: whether we already patched)."""


def _rebind(target: Any, name: str, value: Any) -> None:
    """Patch ``target.name``, remembering the original."""
    _ORIGINALS[f'{getattr(target, "__name__", target)}.{name}'] = getattr(target, name)
    setattr(target, name, value)


class UnsupportedTractor(TractorSubintError, RuntimeError):
    """The installed tractor is not one this adapter knows how to patch."""


def _backends() -> dict[str, Backend]:
    return {key: get_backend(key) for key in OUR_KEYS}


def _params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


def check_patch_points() -> list[str]:
    """What differs from the upstream this adapter supports (empty: nothing)."""
    from tractor import _child, _root
    from tractor.ipc import _server
    from tractor.runtime import _runtime, _state
    from tractor.spawn import _spawn, _trio

    problems = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    need(isinstance(getattr(_spawn, '_methods', None), dict) and 'trio' in _spawn._methods,
         'tractor.spawn._spawn._methods (a dict with a trio entry)')
    need(callable(getattr(_spawn, 'try_set_start_method', None)), 'tractor.spawn._spawn.try_set_start_method')
    need('trio' in get_args(getattr(_spawn, 'SpawnMethodKey', None)), 'tractor.spawn._spawn.SpawnMethodKey')
    need(hasattr(_spawn, '_spawn_method') and hasattr(_spawn, '_ctx'),
         'tractor.spawn._spawn._spawn_method/_ctx')
    for helper in ('soft_kill', 'hard_kill', 'cancel_on_completion'):
        need(callable(getattr(_spawn, helper, None)), f'tractor.spawn._spawn.{helper}')
    need(_params(_trio.trio_proc) == BACKEND_PARAMS,
         f'the backend signature (tractor.spawn._trio.trio_proc{BACKEND_PARAMS})')
    need(_params(_child._actor_child_main) == CHILD_MAIN_PARAMS,
         f'tractor._child._actor_child_main{CHILD_MAIN_PARAMS}')
    actor = _runtime.Actor
    for method in ('_from_parent', 'load_modules', 'cancel_soon'):
        need(callable(getattr(actor, method, None)), f'tractor.runtime._runtime.Actor.{method}')
    need(SPEC_LABEL in inspect.getsource(actor._from_parent),
         f'Actor._from_parent receiving the spawn spec for label {SPEC_LABEL!r}')
    need(hasattr(actor, 'lifetime_stack'), 'Actor.lifetime_stack')
    need(isinstance(getattr(_root, '_DEBUG_COMPATIBLE_BACKENDS', None), tuple),
         'tractor._root._DEBUG_COMPATIBLE_BACKENDS')
    need(callable(getattr(_state, 'get_runtime_vars', None)), 'tractor.runtime._state.get_runtime_vars')
    server_fields = {field.name for field in msgspec.structs.fields(_server.Server)}
    need({'_peers', '_peer_connected'} <= server_fields,
         'tractor.ipc._server.Server._peers/_peer_connected (the connect-back wait)')
    return problems


def check_reap_protocol(actor_nursery: Any) -> None:
    """Refuse, clearly, an upstream whose per-child reap protocol is not
    main's (``ActorNursery._join_procs``): PRs #481 and #484 replace it with
    per-child reap requests, which this adapter does not speak yet."""
    kind = type(actor_nursery)
    if callable(getattr(kind, '_register_child', None)) or callable(
        getattr(kind, '_register_child_reap', None)
    ):
        raise UnsupportedTractor(
            f'this tractor reaps children per child (upstream PR #481/#484); '
            f'tractor_subint supports {SUPPORTED}, which joins them through '
            f'ActorNursery._join_procs'
        )
    if not hasattr(getattr(actor_nursery, '_join_procs', None), 'wait'):
        raise UnsupportedTractor(
            f'this tractor has no ActorNursery._join_procs event; tractor_subint '
            f'supports {SUPPORTED}'
        )


def _widen(key_type: Any) -> Any:
    keys = tuple(dict.fromkeys((*get_args(key_type), *OUR_KEYS)))
    return Literal[keys]


def _patch_spawn(spawn_module: Any, methods: dict[str, Any]) -> None:
    backends = _backends()
    original = spawn_module.try_set_start_method

    @wraps(original)
    def try_set_start_method(key: str) -> Any:
        if key not in backends:
            return original(key)
        reason = backends[key].unsupported_reason()
        if reason is not None:  # upstream's plugin turns RuntimeError into a usage error
            raise RuntimeError(f'cannot use spawn method {key!r}: {reason}')
        spawn_module._ctx = None
        spawn_module._spawn_method = key
        return None

    _rebind(spawn_module, 'try_set_start_method', try_set_start_method)
    _rebind(spawn_module, 'SpawnMethodKey', _widen(spawn_module.SpawnMethodKey))
    spawn_module._methods.update(methods)


def _patch_actor(actor: Any, subint_hosted: frozenset[str]) -> None:
    from . import _child

    from_parent = actor._from_parent
    load_modules = actor.load_modules

    @wraps(from_parent)
    async def _from_parent(self: Any, *args: Any, **kwargs: Any) -> Any:
        label = self._spawn_method
        if label not in OUR_KEYS:
            return await from_parent(self, *args, **kwargs)
        self._spawn_method = SPEC_LABEL
        try:
            return await from_parent(self, *args, **kwargs)
        finally:
            self._spawn_method = label

    @wraps(load_modules)
    def _load_modules(self: Any, *args: Any, **kwargs: Any) -> Any:
        label = self._spawn_method
        if label not in OUR_KEYS:
            return load_modules(self, *args, **kwargs)
        if _child.cancel_fd is not None and self._service_tn is not None:
            self._service_tn.start_soon(_child.watch_cancel_fd, self, _child.cancel_fd)
        if label in subint_hosted:
            self._spawn_method = 'trio'  # the parent's __main__, as for an exec'd child
        try:
            return load_modules(self, *args, **kwargs)
        finally:
            self._spawn_method = label

    _rebind(actor, '_from_parent', _from_parent)
    _rebind(actor, 'load_modules', _load_modules)


def patch_pytest_plugin(plugin: Any) -> None:
    """Our keys in upstream's pytest plugin (idempotent)."""
    if getattr(plugin, '_tractor_subint_patched', False):
        return
    forking = {key for key, backend in _backends().items() if backend.forks}
    is_forking = plugin._is_forking_spawner

    @wraps(is_forking)
    def _is_forking_spawner(start_method: str) -> bool:
        return start_method in forking or bool(is_forking(start_method))

    _rebind(plugin, 'SpawnMethodKey', _widen(plugin.SpawnMethodKey))
    _rebind(plugin, '_CAPSYS_REQUIRED_SPAWNERS',
            frozenset(plugin._CAPSYS_REQUIRED_SPAWNERS) - set(OUR_KEYS))
    _rebind(plugin, '_is_forking_spawner', _is_forking_spawner)
    plugin._tractor_subint_patched = True


def apply(methods: Callable[[], dict[str, Any]]) -> None:
    """Check every patch point, then patch (once per interpreter) with the
    spawn methods ``methods()`` makes (after the check: it imports upstream)."""
    if _ORIGINALS:
        return
    problems = check_patch_points()
    if problems:
        import tractor

        raise UnsupportedTractor(
            f'tractor_subint supports {SUPPORTED}; the tractor at '
            f'{getattr(tractor, "__file__", "?")} differs: ' + '; '.join(problems)
        )
    from tractor import _root
    from tractor.runtime import _runtime
    from tractor.spawn import _spawn

    subint_hosted = frozenset(key for key, backend in _backends().items() if backend.hosts_subinterpreter)
    _patch_spawn(_spawn, methods())
    _patch_actor(_runtime.Actor, subint_hosted)
    _rebind(_root, '_DEBUG_COMPATIBLE_BACKENDS', tuple(
        key for key in _root._DEBUG_COMPATIBLE_BACKENDS if key not in OUR_KEYS
    ))
    plugin = sys.modules.get('tractor._testing.pytest')
    if plugin is not None:
        patch_pytest_plugin(plugin)
