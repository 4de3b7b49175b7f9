"""Where upstream tractor is patched, checked before anything is changed.

Upstream has no hook for external backends, but reads every relevant name
at call time, so rebinding module and class attributes is enough. Each
patch point is checked first (it exists, with the shape we rely on); any
mismatch raises :class:`UnsupportedTractor` naming what differs and the
shapes this adapter supports (:data:`SUPPORTED`), before a single attribute
is changed. Which spawn contract the backends speak is read from the
installed tractor (``_shape``).

The patch points (the same on every supported tree):

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
- ``tractor._root._DEBUG_COMPATIBLE_BACKENDS``: ``main_thread_forkserver``
  is in it (its actor's trio runs on the child's main thread, where
  upstream's debugger installs its SIGINT handler and reads the terminal);
  ``subint_forkserver`` is not, and upstream's refusal then says why
  (:class:`_DebugCompatibleBackends`).
- ``tractor._testing.pytest`` (when loaded): its own ``SpawnMethodKey`` is
  widened; our keys leave ``_CAPSYS_REQUIRED_SPAWNERS`` (our children take
  their stdio per policy and work under ``--capture=fd``);
  ``_is_forking_spawner`` is true for our forking keys.
"""
from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal, get_args

import msgspec

from .._exceptions import TractorSubintError
from ..spawn import Backend, get_backend
from ._shape import SHAPES, SpawnContract, detect

SUPPORTED = (
    'goodboy/tractor with either spawn contract, ' + SHAPES + '; tested on main at 3690e43a '
    'and the merged trees of PRs #481 and #484'
)
"""What this adapter supports, for error messages."""
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
_CONTRACT: list[SpawnContract] = []
"""The installed tractor's spawn contract, once :func:`apply` checked it."""
REGISTERED: list[str] = []
"""Our keys registered into upstream's ``_methods`` by :func:`apply`."""

DEBUG_MODE_KEYS = ('main_thread_forkserver',)
"""Our keys under which upstream's ``debug_mode`` works: the actor's trio
runs on its process's main thread."""
NO_DEBUG_MODE_WHY = (
    "subint_forkserver cannot host tractor's debugger: its actor runs trio in a "
    "subinterpreter on a worker thread of the child, where no signal handler can be "
    "installed (the REPL shields SIGINT) and the child's main interpreter owns the "
    "terminal; use start_method='main_thread_forkserver' for debug_mode"
)


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


def spawn_contract() -> SpawnContract:
    """The installed tractor's spawn contract (after :func:`apply`)."""
    if not _CONTRACT:
        raise RuntimeError('tractor_subint.upstream.register() has not patched tractor yet')
    return _CONTRACT[0]


def check_patch_points() -> list[str]:
    """What differs from the upstream this adapter supports (empty: nothing)."""
    problems, _ = _check()
    return problems


def _check() -> tuple[list[str], SpawnContract | None]:
    from tractor import _child, _root
    from tractor.ipc import _server
    from tractor.runtime import _runtime, _state
    from tractor.spawn import _spawn, _trio

    problems = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    contract = detect(problems)
    need(isinstance(getattr(_spawn, '_methods', None), dict) and 'trio' in _spawn._methods,
         'tractor.spawn._spawn._methods (a dict with a trio entry)')
    need(callable(getattr(_spawn, 'try_set_start_method', None)), 'tractor.spawn._spawn.try_set_start_method')
    need('trio' in get_args(getattr(_spawn, 'SpawnMethodKey', None)), 'tractor.spawn._spawn.SpawnMethodKey')
    need(hasattr(_spawn, '_spawn_method') and hasattr(_spawn, '_ctx'),
         'tractor.spawn._spawn._spawn_method/_ctx')
    for helper in ('soft_kill', 'hard_kill', 'new_proc'):
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
    return problems, contract


def _widen(key_type: Any) -> Any:
    keys = tuple(dict.fromkeys((*get_args(key_type), *OUR_KEYS)))
    return Literal[keys]


class _DebugCompatibleBackends(tuple[str, ...]):
    """Upstream's ``_DEBUG_COMPATIBLE_BACKENDS``, whose text (which upstream's
    ``debug_mode`` refusal prints) also says why ``subint_forkserver`` is not
    in it."""

    def __repr__(self) -> str:
        return f'{tuple(self)!r} ({NO_DEBUG_MODE_WHY})'


def _patch_spawn(spawn_module: Any, methods: dict[str, Any]) -> None:
    backends = {key: backend for key, backend in _backends().items() if key in methods}
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


def _patch_actor(actor: Any, ours: frozenset[str], subint_hosted: frozenset[str]) -> None:
    from . import _child

    from_parent = actor._from_parent
    load_modules = actor.load_modules

    @wraps(from_parent)
    async def _from_parent(self: Any, *args: Any, **kwargs: Any) -> Any:
        label = self._spawn_method
        if label not in ours:
            return await from_parent(self, *args, **kwargs)
        self._spawn_method = SPEC_LABEL
        try:
            return await from_parent(self, *args, **kwargs)
        finally:
            self._spawn_method = label

    @wraps(load_modules)
    def _load_modules(self: Any, *args: Any, **kwargs: Any) -> Any:
        label = self._spawn_method
        if label not in ours:
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


def _patch_debug_compatible(root: Any, ours: frozenset[str]) -> None:
    keys = [key for key in root._DEBUG_COMPATIBLE_BACKENDS if key not in ours]
    keys += [key for key in DEBUG_MODE_KEYS if key in ours]
    _rebind(root, '_DEBUG_COMPATIBLE_BACKENDS', _DebugCompatibleBackends(dict.fromkeys(keys)))


def patch_pytest_plugin(plugin: Any) -> None:
    """Our keys in upstream's pytest plugin (idempotent)."""
    if getattr(plugin, '_tractor_subint_patched', False):
        return
    ours = set(REGISTERED)
    forking = {key for key, backend in _backends().items() if backend.forks and key in ours}
    is_forking = plugin._is_forking_spawner

    @wraps(is_forking)
    def _is_forking_spawner(start_method: str) -> bool:
        return start_method in forking or bool(is_forking(start_method))

    _rebind(plugin, 'SpawnMethodKey', _widen(plugin.SpawnMethodKey))
    _rebind(plugin, '_CAPSYS_REQUIRED_SPAWNERS',
            frozenset(plugin._CAPSYS_REQUIRED_SPAWNERS) - ours)
    _rebind(plugin, '_is_forking_spawner', _is_forking_spawner)
    plugin._tractor_subint_patched = True


def apply(methods: Callable[[], dict[str, Any]], *, override: bool = False) -> tuple[str, ...]:
    """Check every patch point, then patch (once per interpreter) with the
    spawn methods ``methods()`` makes (after the check: it imports upstream).

    A key upstream already has a spawn method for keeps upstream's, with a
    warning, unless ``override``. Returns the keys registered.
    """
    if _ORIGINALS:
        return tuple(REGISTERED)
    problems, contract = _check()
    if problems or contract is None:
        import tractor

        raise UnsupportedTractor(
            f'tractor_subint supports {SUPPORTED}; the tractor at '
            f'{getattr(tractor, "__file__", "?")} differs: ' + '; '.join(problems)
        )
    from tractor import _root
    from tractor.runtime import _runtime
    from tractor.spawn import _spawn

    ours = {}
    for key, method in methods().items():
        if key in _spawn._methods and not override:
            warnings.warn(
                f'upstream tractor already provides spawn method {key!r}; keeping '
                f"upstream's (tractor_subint.upstream.register(override=True) replaces it "
                f'with tractor_subint\'s)',
                UpstreamBackendKept,
                stacklevel=3,
            )
            continue
        ours[key] = method
    _CONTRACT[:] = [contract]
    REGISTERED[:] = list(ours)
    keys = frozenset(ours)
    subint_hosted = frozenset(
        key for key, backend in _backends().items() if backend.hosts_subinterpreter and key in keys
    )
    _patch_spawn(_spawn, ours)
    _patch_actor(_runtime.Actor, keys, subint_hosted)
    _patch_debug_compatible(_root, keys)
    plugin = sys.modules.get('tractor._testing.pytest')
    if plugin is not None:
        patch_pytest_plugin(plugin)
    return tuple(REGISTERED)


class UpstreamBackendKept(UserWarning):
    """``register()`` left a spawn method upstream already provides in place."""
