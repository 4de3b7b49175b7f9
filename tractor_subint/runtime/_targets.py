"""Naming functions across actors: ``(module, qualname)`` references.

A function defined in the parent's ``__main__`` is found in the child the way
``multiprocessing`` finds it: a forked child running in the main interpreter
already has that ``__main__``; an exec'd child or a subinterpreter loads the
parent's main script (or ``-m`` module) under the name ``__mp_main__``, so its
``if __name__ == '__main__':`` block does not run again.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import runpy
import sys
import types
from collections.abc import Callable

from .._exceptions import PUBLIC_MODULE, TractorSubintError
from ..spawn._recycle_hooks import forget_on_recycle
from ._bootspec import BootSpec

MAIN_ALIAS = '__mp_main__'


class UnguardedMainError(TractorSubintError, RuntimeError):
    """The tree's main script starts trio when it is imported."""

    __module__ = PUBLIC_MODULE

    def __init__(self, script: str) -> None:
        super().__init__(
            f'{script} calls trio.run() when it is imported. An actor imports the main '
            f'script to find functions defined there (enable_modules=[__name__] or '
            f'"__main__"), which then ran trio.run() inside the actor\'s own run. Start '
            f"trio under a guard:  if __name__ == '__main__': trio.run(main)"
        )


def func_ref(fn: Callable[..., object]) -> tuple[str, str]:
    """``(module, qualname)`` for ``fn``, refusing what a child cannot find."""
    module = getattr(fn, '__module__', None)
    qualname = getattr(fn, '__qualname__', None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f'{fn!r} is not a module-level function: cannot call it in another actor')
    if '<locals>' in qualname or '<lambda>' in qualname:
        raise TypeError(
            f'{module}.{qualname} is a local function or lambda: define it at module '
            f'level so another actor can import it'
        )
    return module_ref(module), qualname


def call_ref(fn: Callable[..., object], *, stream: bool) -> tuple[str, str]:
    """:func:`check_target`, then :func:`func_ref`: what a portal sends to
    call ``fn``. Remembered per function (both depend on it alone)."""
    try:
        return _checked_ref(fn, stream)
    except TypeError:
        if _hashable(fn):
            raise  # check_target's or func_ref's refusal
        check_target(fn, stream=stream)
        return func_ref(fn)


@functools.lru_cache(maxsize=1024)
def _checked_ref(fn: Callable[..., object], stream: bool) -> tuple[str, str]:
    check_target(fn, stream=stream)
    return func_ref(fn)


def returns_directly(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` is neither an async function nor an async generator
    function: calling it gives its result (or an awaitable a wrapper made).
    Remembered per function: an actor asks for every call it answers."""
    try:
        return _returns_directly(fn)
    except TypeError:  # unhashable: asked afresh
        return _returns_directly.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _returns_directly(fn: Callable[..., object]) -> bool:
    return not (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))


@forget_on_recycle
def _forget_the_last_actor() -> None:
    # The next actor in this (recycled) interpreter must not keep the last
    # one's functions, nor their modules, alive.
    _checked_ref.cache_clear()
    _returns_directly.cache_clear()


def _hashable(value: object) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def check_target(fn: Callable[..., object], *, stream: bool) -> None:
    """Refuse, before anything is sent, a target the other actor could not
    call the way it was asked to: a method bound to an instance (only its
    function would be sent, without ``self``), an async generator function
    given to ``run`` (``stream=False``), anything but one given to
    ``open_stream_from`` (``stream=True``).

    A wrapped function (``functools.wraps``) may return an async generator
    without being an async generator function itself: it is let through
    here, and the actor checks what the call returns.
    """
    bound_to = getattr(fn, '__self__', None)
    if inspect.ismethod(fn) and not isinstance(bound_to, type):
        raise TypeError(
            f'{fn.__qualname__} is a method bound to a {type(bound_to).__name__} instance: only '
            f'its function would reach the other actor, without the instance; call a '
            f'module-level function (or a staticmethod or classmethod) instead'
        )
    name = f'{getattr(fn, "__module__", "?")}.{getattr(fn, "__qualname__", fn)!s}'
    if not stream and inspect.isasyncgenfunction(fn):
        raise TypeError(
            f'{name} is an async generator function: portal.run() calls a function for '
            f'its result; stream what it yields with portal.open_stream_from()'
        )
    if stream and _plainly_not_async_gen(fn):
        kind = 'an async function' if inspect.iscoroutinefunction(fn) else 'not an async generator function'
        raise TypeError(
            f'{name} is {kind}: open_stream_from() needs an async generator function '
            f'(async def with yield); call it with portal.run()'
        )


def _plainly_not_async_gen(fn: object) -> bool:
    """Whether ``fn`` is certainly not an async generator function (not a
    wrapper that might return one)."""
    if inspect.isasyncgenfunction(fn):
        return False
    if inspect.iscoroutinefunction(fn) or inspect.isgeneratorfunction(fn):
        return True
    return inspect.isfunction(fn) and not hasattr(fn, '__wrapped__')


def check_resolved(fn: object, name: str, *, stream: bool) -> None:
    """The actor's own check of a resolved target before calling it (a
    parent that skipped :func:`check_target`, or a target that changed)."""
    if stream and _plainly_not_async_gen(fn):
        raise TypeError(f'{name} is not an async generator function: open_stream_from() needs one')
    if not stream and inspect.isasyncgenfunction(fn):
        raise TypeError(
            f'{name} is an async generator function: use open_stream_from(), not run()'
        )


def module_ref(module: str) -> str:
    """The name another actor finds ``module`` by: a script's ``__main__``
    is ``__main__`` everywhere, also where it was loaded as ``__mp_main__``."""
    return '__main__' if module == MAIN_ALIAS else module


def main_info(spec: BootSpec | None) -> tuple[str | None, str | None]:
    """``(main_path, main_module)`` of the tree's main script, for a child's
    boot spec: a child actor passes on what it was given (its own
    ``__main__`` may be a boot module or an empty subinterpreter main)."""
    if spec is not None:
        return spec.main_path, spec.main_module
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    main_module = getattr(spec, 'name', None)
    path = getattr(main, '__file__', None)
    return (os.path.abspath(path) if path else None), main_module


def parent_main(spec: BootSpec) -> types.ModuleType:
    """The parent's ``__main__`` module in this actor (loading it as
    ``__mp_main__`` where it is not already this process's ``__main__``)."""
    main = sys.modules['__main__']
    path = getattr(main, '__file__', None)
    if spec.main_path and path and os.path.abspath(path) == spec.main_path:
        return main  # a forked child: the parent's __main__ is already here
    if MAIN_ALIAS in sys.modules:
        return sys.modules[MAIN_ALIAS]
    module = types.ModuleType(MAIN_ALIAS)
    sys.modules[MAIN_ALIAS] = module
    try:
        if spec.main_module and spec.main_module != '__main__':
            namespace = runpy.run_module(spec.main_module, run_name=MAIN_ALIAS, alter_sys=False)
        elif spec.main_path:
            namespace = runpy.run_path(spec.main_path, run_name=MAIN_ALIAS)
        else:
            raise LookupError("the parent's __main__ has no file or module to load")
    except BaseException as exc:
        del sys.modules[MAIN_ALIAS]
        if isinstance(exc, RuntimeError) and 'from inside a run()' in str(exc):
            raise UnguardedMainError(spec.main_path or spec.main_module or '__main__') from exc
        raise
    module.__dict__.update(namespace)
    return module


def resolve(spec: BootSpec | None, module_name: str, qualname: str) -> Callable[..., object]:
    """The function ``module_name.qualname`` in this actor (``spec`` None:
    the root actor, whose ``__main__`` is the program's own)."""
    if module_name == '__main__':
        obj: object = parent_main(spec) if spec is not None else sys.modules['__main__']
    else:
        obj = sys.modules.get(module_name)
        if obj is None or getattr(getattr(obj, '__spec__', None), '_initializing', False):
            obj = importlib.import_module(module_name)  # not (fully) imported yet
    for part in qualname.split('.'):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f'{module_name}.{qualname} is not callable')
    return obj
