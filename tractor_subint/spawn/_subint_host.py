"""Run code in a fresh subinterpreter on a dedicated thread, and clean up.

Three CPython facts drive this module (measured on 3.13.0 and 3.14.10):

- ``_interpreters.exec()`` does not raise when the code fails: it returns an
  object describing the exception. We turn that into :class:`SubintExecError`.
- The public ``concurrent.interpreters`` (3.14) only makes *isolated*
  interpreters, where msgspec refuses to load. We use the ``legacy`` config
  (shared GIL, single-phase extensions allowed) with ``allow_fork=False``, so
  an accidental ``os.fork()`` inside the subinterpreter raises a clean
  ``RuntimeError`` instead of producing a child that dies at once.
- On 3.13, ``_interpreters.destroy()`` aborts the whole process while any
  other thread of that interpreter is alive, and ``trio.to_thread`` leaves
  idle worker threads behind for ~10 s. Teardown therefore retires trio's
  idle workers and joins the interpreter's threads before destroying it, and
  leaves the interpreter alive (with a warning) rather than crash.
- An exception that escapes ``_interpreters.exec()`` with text that cannot be
  copied out (a lone surrogate in its message, a ``__str__`` that raises)
  crashes the process with SIGSEGV (3.13 and 3.14). Bootstrap code therefore
  runs under :data:`_ESCAPE_GUARD`, which replaces such an exception with a
  plain one carrying a safe rendering (``ai/conc-anal/subint_unprintable_exception_segv.md``).
- ``import trio`` in a fresh interpreter calls ``ctypes.util.find_library('pthread')``,
  which runs ``/sbin/ldconfig -p`` in a subprocess: 1.5-2.5 ms per actor, and a
  process killed meanwhile (a warm pool member closed while it warms) leaves
  the ``ldconfig`` orphaned. :func:`new_subint` gives each subinterpreter a
  ``find_library('pthread')`` that asks the dynamic linker instead: no
  process, and nothing computed in the main interpreter, whose worker threads
  must not import or spawn while another thread forks (a fork child inherits
  their locks held).
"""
from __future__ import annotations

import _interpreters
import threading
import types
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Literal

from .._exceptions import PUBLIC_MODULE, TractorSubintError
from ._priority import run_lowered
from ._threads import run_in_thread
from ._unended import strand

DEFAULT_TEARDOWN_TIMEOUT = 5.0


class SubintExecError(TractorSubintError, RuntimeError):
    """Code run in a subinterpreter raised; carries its formatted traceback."""

    __module__ = PUBLIC_MODULE

    def __init__(self, interp_id: int, type_name: str, message: str, traceback: str) -> None:
        self.interp_id = interp_id
        self.type_name = type_name
        self.message = message
        self.traceback = traceback
        super().__init__(
            f'subinterpreter {interp_id} raised {type_name}: {message}\n'
            f'--- traceback inside the subinterpreter ---\n{traceback.rstrip()}'
        )

    @classmethod
    def from_excinfo(cls, interp_id: int, info: object) -> SubintExecError:
        typ = getattr(info, 'type', None)
        module = getattr(typ, '__module__', None)
        qualname = getattr(typ, '__qualname__', None) or getattr(typ, '__name__', '?')
        type_name = qualname if module in (None, 'builtins') else f'{module}.{qualname}'
        message = str(getattr(info, 'msg', ''))
        type_name = str(type_name)
        traceback = (
            getattr(info, 'errdisplay', None)
            or getattr(info, 'formatted', None)
            or f'{type_name}: {message}'
        )
        return cls(interp_id, type_name, message, str(traceback))


_ESCAPE_GUARD = """\
def __tractor_subint_escape__(exc):
    import traceback
    try:
        # CPython copies str() of the exception and of its chain, and the
        # traceback module's rendering (which hides a failing __str__).
        seen, chain = set(), [exc]
        while chain:
            item = chain.pop()
            if item is None or id(item) in seen:
                continue
            seen.add(id(item))
            str(item).encode('utf-8')
            chain += [item.__cause__, item.__context__]
        ''.join(traceback.format_exception(exc)).encode('utf-8')
        return None
    except BaseException:
        pass
    try:
        frames = ''.join(traceback.format_tb(exc.__traceback__))
    except BaseException:
        frames = ''
    try:
        message = str(exc)
    except BaseException as str_error:
        message = f'<unprintable: its __str__ raised {type(str_error).__name__}>'
    safe = RuntimeError(
        f'{type(exc).__qualname__} whose text cannot leave the subinterpreter: '
        f'{message}\\n{frames}'.encode('utf-8', 'backslashreplace').decode('utf-8')
    )
    safe.__suppress_context__ = True
    return safe

__tractor_subint_safe__ = None
try:
    exec(compile(__tractor_subint_bootstrap__, '<string>', 'exec'), globals())
except BaseException as exc:
    __tractor_subint_safe__ = __tractor_subint_escape__(exc)
    if __tractor_subint_safe__ is None:
        raise
if __tractor_subint_safe__ is not None:
    raise __tractor_subint_safe__
"""
"""Runs bootstrap code so that no exception escapes the subinterpreter in a
form CPython cannot copy out (module docstring): an unsafe one is replaced
outside its ``except`` block, so it does not even ride along as context."""


SubintKind = Literal['legacy', 'isolated']


def subint_config(kind: SubintKind = 'legacy') -> types.SimpleNamespace:
    """The ``legacy`` (or ``isolated``: own GIL, multi-phase extension
    modules only) config, with forking disallowed."""
    config = _interpreters.new_config(kind)
    config.allow_fork = False
    # trio's worker threads (to_thread) are daemon threads; our teardown
    # retires them before the interpreter is destroyed.
    config.allow_daemon_threads = True
    return config


def _retire_threads() -> None:
    # Runs *inside* the subinterpreter (as a code object, against its
    # __main__), so it imports what it needs and reads its bound from there.
    import sys
    import threading
    import time

    thread_cache = sys.modules.get('trio._core._thread_cache')
    if thread_cache is not None and hasattr(thread_cache, 'THREAD_CACHE'):
        # trio's idle workers wait IDLE_TIMEOUT (10 s) for a job before
        # exiting. Make that wait zero, then hand each idle worker a no-op
        # job: it runs it, finds no next job at once, and exits.
        cache = thread_cache.THREAD_CACHE
        idle = getattr(cache, '_idle_workers', None)
        if isinstance(idle, dict) and hasattr(thread_cache, 'IDLE_TIMEOUT'):
            setattr(thread_cache, 'IDLE_TIMEOUT', 0)  # noqa: B010 (typed module)
            workers = list(idle)
            idle.clear()
            for worker in workers:
                worker._job = (lambda: None, lambda _outcome: None, None)
                worker._worker_lock.release()
    # Globals here are the subinterpreter's __main__: _teardown set this one.
    deadline = time.monotonic() + float(globals()['__tractor_subint_teardown_timeout__'])
    # threading.main_thread() here is the process's main thread, not ours.
    me, process_main = threading.current_thread(), threading.main_thread()
    for thread in threading.enumerate():
        if thread in (me, process_main) or isinstance(thread, threading._DummyThread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [
        t.name for t in threading.enumerate()
        if t not in (me, process_main) and not isinstance(t, threading._DummyThread)
    ]
    if left:
        raise RuntimeError(f'threads still alive: {left}')


def _teardown(interp_id: int, timeout: float) -> None:
    _interpreters.set___main___attrs(
        interp_id, {'__tractor_subint_teardown_timeout__': float(timeout)}
    )
    failure = _interpreters.exec(interp_id, _retire_threads)
    if failure is not None:
        # The process cannot exit while they run: its exit is bounded (_unended).
        strand(
            interp_id, f'its code left {getattr(failure, "msg", failure)}',
            retry=partial(retry_teardown, interp_id),
        )
        warnings.warn(
            f'leaving subinterpreter {interp_id} alive: destroying it now could '
            f'abort the process (3.13) or strand its threads: '
            f'{getattr(failure, "msg", failure)}',
            RuntimeWarning,
            stacklevel=2,
        )
        return
    _interpreters.destroy(interp_id)


def teardown_subint(interp_id: int, timeout: float = DEFAULT_TEARDOWN_TIMEOUT) -> None:
    """Retire the threads of subinterpreter ``interp_id`` (at most ``timeout``
    seconds) and destroy it; if threads remain, leave it alive (the
    process's exit is bounded around it: ``_unended``) with a warning."""
    _teardown(interp_id, timeout)


_BASELINE = 'import sys\nsys.__tractor_subint_baseline__ = frozenset(sys.modules)\n'


def mark_baseline(interp_id: int) -> None:
    """Record which modules subinterpreter ``interp_id`` holds now (once
    warm, before any actor ran in it): what :func:`recycle_subint` keeps."""
    failure = _interpreters.exec(interp_id, _BASELINE)
    if failure is not None:
        raise SubintExecError.from_excinfo(interp_id, failure)


_RESET = """\
def __tractor_subint_reset__():
    import atexit, gc, importlib, sys
    baseline = getattr(sys, '__tractor_subint_baseline__', None)
    if baseline is None:
        raise RuntimeError('no baseline recorded: this interpreter cannot be recycled')
    # What was loaded before the actor ran stays, with any part of those
    # packages (and of the stdlib) imported since: another copy of a module
    # of trio, say, beside the one trio holds, would split its state in two.
    kept = {name.partition('.')[0] for name in baseline} | set(sys.stdlib_module_names)
    for name in list(sys.modules):
        if name not in baseline and name != '__main__' and name.partition('.')[0] not in kept:
            del sys.modules[name]  # the actor's own modules: fresh for the next one
    # State the kept modules hold for the actor (spawn._recycle_hooks).
    hooks = sys.modules.get('tractor_subint.spawn._recycle_hooks')
    if hooks is not None:
        hooks.forget_actor_leftovers()
    atexit._clear()
    importlib.invalidate_caches()
    main = sys.modules['__main__'].__dict__
    for key in list(main):
        if key not in ('__name__', '__doc__', '__package__', '__loader__', '__spec__', '__builtins__'):
            del main[key]
    gc.collect()

__tractor_subint_reset__()
"""
"""Runs in a subinterpreter whose actor ended cleanly, so that the next
actor finds it as it was once warm (see :func:`recycle_subint`)."""


def recycle_subint(interp_id: int, timeout: float = DEFAULT_TEARDOWN_TIMEOUT) -> bool:
    """Make subinterpreter ``interp_id``, whose code ended, fit for another
    actor; whether it is (if not, the caller tears it down).

    It is if its threads end within ``timeout`` seconds (trio's idle
    workers are retired) and a baseline was recorded (:func:`mark_baseline`).
    Then, inside it: modules that were not loaded at the baseline are
    dropped unless they belong to a package that was, or to the stdlib (the
    actor's own modules are imported afresh by the next actor); what kept
    modules hold for the actor is forgotten (``_recycle_hooks``); ``atexit``
    callbacks, ``__main__``'s globals and reference cycles go. What stays is
    the interpreter itself (on 3.13 its allocator's arenas, which a destroy
    would not give back), the baseline's modules, and whatever module-level
    state the actor left in them.
    """
    _interpreters.set___main___attrs(
        interp_id, {'__tractor_subint_teardown_timeout__': float(timeout)}
    )
    if _interpreters.exec(interp_id, _retire_threads) is not None:
        return False
    return _interpreters.exec(interp_id, _RESET) is None


def retry_teardown(interp_id: int, timeout: float) -> bool:
    """Tear down a subinterpreter that an earlier teardown left alive, if
    its threads end within ``timeout`` seconds; whether it is gone."""
    try:
        _interpreters.set___main___attrs(
            interp_id, {'__tractor_subint_teardown_timeout__': float(timeout)}
        )
        if _interpreters.exec(interp_id, _retire_threads) is not None:
            return False
        _interpreters.destroy(interp_id)
    except Exception:
        return False
    return True


_LIBRARY_SEED = """\
import ctypes, ctypes.util

def __tractor_subint_seeded__(find):
    # find_library('pthread') runs `/sbin/ldconfig -p` in a subprocess; the
    # answer is whether the dynamic linker can load the library, which a
    # dlopen says without a process (musl: no libpthread, None as there).
    def find_library(name):
        if name != 'pthread':
            return find(name)
        try:
            ctypes.CDLL('libpthread.so.0')
        except OSError:
            return None
        return 'libpthread.so.0'
    return find_library

ctypes.util.find_library = __tractor_subint_seeded__(ctypes.util.find_library)
del __tractor_subint_seeded__
"""


CREATION_LOCK = threading.Lock()
"""Held while :func:`new_subint` creates a subinterpreter, and by a forking
thread from its last "no subinterpreter alive" check to its fork
(``_fork``): a child forked while another thread creates one would crash."""


def new_subint(kind: SubintKind = 'legacy') -> int:
    """Create a subinterpreter with :func:`subint_config`, its library
    lookups seeded (module docstring); return its id."""
    with CREATION_LOCK:
        interp_id = int(_interpreters.create(subint_config(kind)))
    failure = _interpreters.exec(interp_id, _LIBRARY_SEED)
    if failure is not None:
        _interpreters.destroy(interp_id)
        raise SubintExecError.from_excinfo(interp_id, failure)
    return interp_id


_IMPORT = '''
import importlib, sys
sys.path[:] = __tractor_subint_sys_path__
for _name in __tractor_subint_preload__:
    importlib.import_module(_name)
'''


def import_in_subint(interp_id: int, sys_path: Sequence[str], modules: Sequence[str]) -> None:
    """Set subinterpreter ``interp_id``'s ``sys.path`` and import ``modules``
    there (warming it up ahead of its bootstrap); raise
    :class:`SubintExecError` if an import fails."""
    _interpreters.set___main___attrs(interp_id, {
        '__tractor_subint_sys_path__': tuple(sys_path),
        '__tractor_subint_preload__': tuple(modules),
    })
    failure = _interpreters.exec(interp_id, _IMPORT)
    if failure is not None:
        raise SubintExecError.from_excinfo(interp_id, failure)


def boot_subint(
    sys_path: Sequence[str], modules: Sequence[str], *, kind: SubintKind = 'legacy', idle: bool = False,
) -> int:
    """A subinterpreter with ``modules`` imported, created and warmed at a
    lowered priority (``_priority``: nice ``BOOT_NICE``, or ``SCHED_IDLE`` if
    ``idle``) on a thread of its own, so that a boot never competes with the
    foreground; its id. For a process where no other thread waits for
    :data:`CREATION_LOCK` (a lowered thread must not hold it): a forked
    child; elsewhere create with :func:`new_subint`, then :func:`warm_subint`.
    An import that fails is left for the bootstrap to meet again and report."""

    def boot() -> int:
        interp_id = new_subint(kind)
        _import_quietly(interp_id, sys_path, modules)
        return interp_id

    return run_lowered(boot, idle=idle)


def warm_subint(
    interp_id: int, sys_path: Sequence[str], modules: Sequence[str], *, idle: bool = False,
) -> None:
    """Import ``modules`` in subinterpreter ``interp_id`` at a lowered
    priority (as :func:`boot_subint`); a failed import is left for later."""
    run_lowered(partial(_import_quietly, interp_id, sys_path, modules), idle=idle)


def _import_quietly(interp_id: int, sys_path: Sequence[str], modules: Sequence[str]) -> None:
    try:
        import_in_subint(interp_id, sys_path, modules)
    except SubintExecError:
        pass


def run_subint_here(
    bootstrap: str,
    *,
    shared: Mapping[str, object] | None = None,
    teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
    interp_id: int | None = None,
    teardown: bool = True,
) -> None:
    """Run ``bootstrap`` in a subinterpreter on the calling thread, then
    tear the subinterpreter down. :func:`run_subint_in_worker_thread`
    documents the arguments; use this one when you already are on a
    dedicated thread.

    ``interp_id`` runs it in an existing subinterpreter (made by
    :func:`new_subint`, perhaps prepared ahead) instead of a fresh one.
    ``teardown=False`` leaves the subinterpreter and its threads as they are:
    only for a process that ends with ``os._exit`` right after, where a
    teardown (retiring threads, ``destroy``) is 20-50 ms of nothing.
    """
    if interp_id is None:
        interp_id = new_subint()
    error: BaseException | None = None
    try:
        _interpreters.set___main___attrs(
            interp_id, {**(shared or {}), '__tractor_subint_bootstrap__': bootstrap}
        )
        failure = _interpreters.exec(interp_id, _ESCAPE_GUARD)
        if failure is not None:
            error = SubintExecError.from_excinfo(interp_id, failure)
    except BaseException as exc:
        error = exc
    finally:
        try:
            if teardown:
                _teardown(interp_id, teardown_timeout)
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error


def run_subint_in_worker_thread(
    bootstrap: str,
    *,
    thread_name: str = 'tractor-subint-driver',
    shared: Mapping[str, object] | None = None,
    teardown_timeout: float = DEFAULT_TEARDOWN_TIMEOUT,
) -> None:
    """Run ``bootstrap`` in a fresh subinterpreter on a new thread; block
    until it finishes, however long that takes.

    ``shared`` values (str, bytes, int, float, bool, None) are set as globals
    of the subinterpreter's ``__main__`` before ``bootstrap`` runs: that is how
    a boot payload crosses the interpreter boundary.

    Raises :class:`SubintExecError` (with the subinterpreter's traceback) when
    ``bootstrap`` raises. Teardown waits at most ``teardown_timeout`` seconds
    for threads the bootstrap left in the subinterpreter; if some are still
    alive, the subinterpreter is left in place with a ``RuntimeWarning``.

    Do not call it from a thread that must fork later: while the
    subinterpreter lives, this process cannot fork safely.
    """
    run_in_thread(
        lambda: run_subint_here(bootstrap, shared=shared, teardown_timeout=teardown_timeout),
        thread_name=thread_name,
    )
