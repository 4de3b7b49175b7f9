"""The spawn-method registry: which backend starts a child, and what it needs.

A backend is one :class:`Backend` record: its key, its spawn function, what
it does (forks? hosts the actor in a subinterpreter?), what the platform must
offer, and whether it works at all. Everything else is derived from the
records: the usable keys, :func:`try_set_start_method`'s checks and every
error text. :func:`register_backend` adds a record (the upstream-tractor
adapter and tests use it); :func:`get_backend` looks one up.

Spawn functions are named by ``'module:function'`` and imported on first
use, so a process loads only the backends it spawns with.
"""
from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from ..log import get_logger
from ._contract import SpawnFn, SpawnRequest
from ._docs import FORK_IN_SUBINT_DOC

if TYPE_CHECKING:
    from ._process_handle import ProcessHandle

log = get_logger('spawn')

SpawnMethodKey = Literal[
    'trio',
    'main_thread_forkserver',
    'subint_forkserver',
    'subint',
    'subint_fork',
]
"""The built-in keys, spelled out for type checkers; checked against the
built-in records when this module loads. :func:`register_backend` may add
others."""
SPAWN_METHOD_KEYS: tuple[SpawnMethodKey, ...] = get_args(SpawnMethodKey)

Requirement = Literal['fork', 'pidfd', 'subinterpreters']
WarmUpFn = Callable[[str, int | None], Awaitable[None]]
Status = Literal['working', 'experimental', 'reserved', 'dead_end']

ENV_VAR = 'TRACTOR_SUBINT_SPAWN_METHOD'
"""Environment variable naming the default spawn method of a process tree."""
DEFAULT_METHOD: SpawnMethodKey = 'trio'


def _missing(requirement: Requirement) -> str | None:
    """Why this Python/platform lacks ``requirement``, or None (asked every
    time: a few microseconds, and a test may take ``os.fork`` away)."""
    if requirement == 'fork':
        if not hasattr(os, 'fork'):
            return f'needs os.fork(), which this platform ({sys.platform}) lacks'
    elif requirement == 'pidfd':
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError):
            return 'needs pidfds (pidfd_open(2), Linux >= 5.3)'
    elif requirement == 'subinterpreters':
        try:
            import _interpreters  # noqa: F401
        except ImportError:
            return (
                f'needs subinterpreters (the _interpreters module, CPython >= 3.13); '
                f'this is {sys.implementation.name} {sys.version.split()[0]}'
            )
    return None


@dataclass(frozen=True)
class Backend:
    """One spawn backend, as the registry knows it."""

    key: str
    description: str
    """One line: what a child of this backend is."""
    spawn_fn: SpawnFn | str | None
    """The backend: ``await spawn_fn(request)`` starts a child and returns its
    :class:`ProcessHandle`. A ``'module:function'`` string is imported on
    first use; None for a key that cannot spawn (see :attr:`status`)."""
    forks: bool = False
    """Spawning forks the spawning process. From a process that cannot fork
    safely (it holds a subinterpreter), the spawn tree's forkserver forks."""
    hosts_subinterpreter: bool = False
    """The child runs its actor in a subinterpreter: its ``__main__`` is not
    the parent's, and the child process itself cannot fork."""
    in_process: bool = False
    """Actors run inside the spawning process (on threads of it): they have
    its pid, a "signal" to one is a cancel request, and an actor that ends
    its process (``os._exit``, a crash) ends its parent with it."""
    requires: frozenset[Requirement] = frozenset()
    status: Status = 'working'
    reason: str | None = None
    """Why a ``'reserved'`` or ``'dead_end'`` key cannot spawn."""
    interpreters: tuple[str, ...] = ()
    """The kinds of subinterpreter one actor may ask for (``interpreter=``
    when spawning it); empty for a backend that offers no choice."""
    codec: str = 'msgpack'
    """The codec its actors' channels speak (``runtime._codec``): one that
    loads where its actors run."""
    warm_up_fn: WarmUpFn | str | None = None
    """Awaited as ``warm_up_fn(entry, warm_pool)`` when a nursery that spawns
    with this backend opens: a backend that keeps a warm pool starts filling
    it. A ``'module:function'`` string is imported on first use."""

    def unsupported_reason(self) -> str | None:
        """Why this Python/platform cannot run the backend, or None."""
        for requirement in sorted(self.requires):
            missing = _missing(requirement)
            if missing is not None:
                return f'{self.key!r} {missing}'
        return None

    def unusable_reason(self) -> str | None:
        """Why this backend cannot spawn actors here, or None if it can."""
        if self.status not in ('working', 'experimental'):
            return f'spawn method {self.key!r} is {self.reason or self.status}'
        return self.unsupported_reason()

    async def warm_up(self, entry: str, warm_pool: int | None = None) -> None:
        """Let the backend prepare for spawning ``entry`` (see :attr:`warm_up_fn`)."""
        if self.warm_up_fn is not None and self.unusable_reason() is None:
            await _resolve(self.warm_up_fn)(entry, warm_pool)

    def check_interpreter(self, interpreter: str | None) -> None:
        """Raise :class:`ValueError` unless ``interpreter`` (an actor's
        ``interpreter=``) is None or a kind this backend offers."""
        if interpreter is None or interpreter in self.interpreters:
            return
        if not self.interpreters:
            offering = [b.key for b in _registry.values() if b.interpreters]
            raise ValueError(
                f'interpreter={interpreter!r}: spawn method {self.key!r} offers no choice of '
                f'interpreter (the ones that do: {", ".join(offering) or "none"})'
            )
        raise ValueError(
            f'interpreter must be one of {", ".join(map(repr, self.interpreters))} '
            f'for spawn method {self.key!r}, not {interpreter!r}'
        )

    async def spawn(self, request: SpawnRequest) -> ProcessHandle:
        """Start ``request``'s child with this backend."""
        fn = self.spawn_fn
        if fn is None:
            raise NotImplementedError(
                f'spawn method {self.key!r} is not available yet: it is {self.reason}. '
                f'Usable methods: {", ".join(available_start_methods())}.'
            )
        started = time.perf_counter()
        handle = await _resolve(fn)(request)
        log.debug(
            '%s: started by %s (pid %s) in %.1f ms', request.name, self.key, getattr(handle, 'pid', '?'),
            (time.perf_counter() - started) * 1000,
        )
        return handle


def _resolve[F: Callable[..., object]](fn: F | str) -> F:
    """``fn``, or the function a ``'module:function'`` string names."""
    if isinstance(fn, str):
        module, _, name = fn.partition(':')
        found: F = getattr(importlib.import_module(module), name)
        return found
    return fn


_BACKENDS = 'tractor_subint.spawn.backends'
_BUILTIN = (
    Backend(
        'trio', 'each actor in a fresh `python -m` process (the baseline)',
        f'{_BACKENDS}.trio:trio_proc',
    ),
    Backend(
        'main_thread_forkserver',
        "forked from a main-interpreter worker thread; the actor runs in the child's "
        'main interpreter',
        f'{_BACKENDS}.main_thread_forkserver:main_thread_forkserver_proc',
        forks=True, requires=frozenset({'fork', 'pidfd'}),
    ),
    Backend(
        'subint_forkserver',
        'forked from a main-interpreter worker thread; the actor runs under trio in a '
        "fresh subinterpreter of the child",
        f'{_BACKENDS}.subint_forkserver:subint_forkserver_proc',
        forks=True, hosts_subinterpreter=True,
        requires=frozenset({'fork', 'pidfd', 'subinterpreters'}),
        warm_up_fn='tractor_subint.spawn.pool._claim:warm_up',
    ),
    Backend(
        'subint',
        'each actor in a fresh subinterpreter of the spawning process, on a thread of its '
        'own (see spawn/backends/subint.py)',
        f'{_BACKENDS}.subint:subint_proc',
        hosts_subinterpreter=True, in_process=True, requires=frozenset({'subinterpreters'}),
        interpreters=('isolated', 'legacy'), codec='marshal',
        warm_up_fn=f'{_BACKENDS}.subint:warm_up',
    ),
    Backend(
        'subint_fork', 'fork from inside a subinterpreter-hosted actor',
        f'{_BACKENDS}.subint_fork:subint_fork_proc',
        forks=True, hosts_subinterpreter=True,
        requires=frozenset({'fork', 'subinterpreters'}),
        status='dead_end', reason=f'a documented dead end: {FORK_IN_SUBINT_DOC}',
    ),
)
if tuple(backend.key for backend in _BUILTIN) != SPAWN_METHOD_KEYS:
    raise ImportError('SpawnMethodKey must list exactly the built-in backends, in order')

_registry: dict[str, Backend] = {backend.key: backend for backend in _BUILTIN}
_selected: str | None = None  # None: follow ENV_VAR, then DEFAULT_METHOD


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Add ``backend`` to the registry (under ``backend.key``); return it.

    A key that is already registered is a :class:`ValueError` unless
    ``replace`` is true.
    """
    if backend.key in _registry and not replace:
        raise ValueError(f'spawn method {backend.key!r} is already registered')
    _registry[backend.key] = backend
    return backend


def unregister_backend(key: str) -> None:
    """Remove a key added by :func:`register_backend` (built-ins stay)."""
    if key in SPAWN_METHOD_KEYS:
        raise ValueError(f'{key!r} is a built-in spawn method')
    _registry.pop(key, None)


def registered_backends() -> tuple[Backend, ...]:
    """Every registered backend, working or not, in registration order."""
    return tuple(_registry.values())


def get_backend(key: str | None = None) -> Backend:
    """The backend registered for ``key`` (default: the selected method).

    Raises :class:`ValueError` naming the registered keys for an unknown one.
    """
    if key is None:
        key = current_start_method()
    try:
        return _registry[key]
    except KeyError:
        raise ValueError(
            f'unknown spawn method {key!r}; registered keys: {", ".join(_registry)}'
        ) from None


def available_start_methods() -> tuple[str, ...]:
    """Keys of working backends that can spawn actors on this Python and
    platform. An ``'experimental'`` one spawns when named, but is not listed
    (nor picked by anything that runs "every backend")."""
    return tuple(
        b.key for b in _registry.values() if b.status == 'working' and b.unusable_reason() is None
    )


def unusable_reason(key: str) -> str | None:
    """Why ``key`` cannot spawn actors here (unknown, reserved, dead end,
    unsupported), or None if it can."""
    backend = _registry.get(key)
    if backend is None:
        return f'unknown spawn method {key!r}'
    return backend.unusable_reason()


def validate_start_method(key: str) -> str:
    """``key`` if it is registered and this platform supports it, else raise
    like :func:`try_set_start_method` (without selecting it)."""
    reason = get_backend(key).unsupported_reason()
    if reason is not None:
        raise RuntimeError(f'cannot use spawn method {key!r}: {reason}')
    return key


def try_set_start_method(key: str) -> str:
    """Select the spawn method for this process; return the key.

    Raises :class:`ValueError` for an unknown key (naming the registered
    ones) and :class:`RuntimeError` when this Python or platform cannot run
    it. Keys that are registered but cannot spawn (reserved, dead ends) are
    accepted: spawning with them explains why it cannot.
    """
    global _selected
    _selected = validate_start_method(key)
    return _selected


def selected_start_method() -> str | None:
    """What :func:`try_set_start_method` selected, or None."""
    return _selected


def reset_start_method() -> None:
    """Forget :func:`try_set_start_method`'s selection (back to the default)."""
    global _selected
    _selected = None


def current_start_method() -> str:
    """The method :func:`try_set_start_method` selected, else the one named
    by ``$TRACTOR_SUBINT_SPAWN_METHOD``, else ``'trio'``."""
    if _selected is not None:
        return _selected
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        try:
            return validate_start_method(from_env)
        except (ValueError, RuntimeError) as exc:
            raise type(exc)(f'${ENV_VAR}: {exc}') from None
    return DEFAULT_METHOD
