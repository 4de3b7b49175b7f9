"""Module-level RPC targets for the runtime behaviour suite (``tests/runtime``).

Importable as ``actor_targets`` in every actor (``tests/`` is on ``sys.path``
through pytest's ``pythonpath`` ini, and children get the parent's
``sys.path``). Every function here is referenced by module and qualname, so
it must stay at module level.

Synchronisation with the test (no sleeps): a target that must tell the test
"I am now at point X" writes a line to a FIFO whose path the test passes in
(:func:`signal_fifo`); a target that must wait for the test's go reads a FIFO
until EOF (:func:`wait_fifo_eof`). Values an actor must hand to a *later* RPC
to the same actor go through :func:`publish` / :func:`wait_published`.
"""
from __future__ import annotations

import contextvars
import os
import sys
import time

import trio

import tractor_subint as ts


class LeafError(Exception):
    """The error raised at the bottom of a nested tree."""


class BoomError(Exception):
    """A user error with a recognisable name."""


# -- per-actor state shared between RPCs to the same actor --------------------

_published: dict[str, object] = {}
_published_events: dict[str, trio.Event] = {}


def _event(key: str) -> trio.Event:
    event = _published_events.get(key)
    if event is None:
        event = _published_events[key] = trio.Event()
    return event


def publish(key: str, value: object) -> None:
    _published[key] = value
    _event(key).set()


def published_keys() -> list[str]:
    """What was published in this actor (its module state, for checking that
    a recycled interpreter imports this module afresh)."""
    return sorted(_published)


def leftovers_of(module: str) -> dict[str, object]:
    """What this interpreter still holds of ``module`` (for checking that a
    recycled interpreter forgot the last actor's module): whether it is
    loaded, how many module objects of that name are alive, and the payload
    types registered from it."""
    import gc
    import types

    from tractor_subint.runtime import _payloads

    gc.collect()
    alive = [obj for obj in gc.get_objects() if isinstance(obj, types.ModuleType) and obj.__name__ == module]
    kinds = _payloads._registered_kinds
    registered = sorted(
        {name for name, cls in _payloads._registered.items() if cls.__module__ == module}
        | {f'{cls.__module__}.{cls.__qualname__}' for cls in kinds if cls.__module__ == module}
    )
    return {'loaded': module in sys.modules, 'alive': len(alive), 'registered': registered}


async def wait_published(key: str) -> object:
    """Wait until ``key`` was published in this actor; return its value."""
    await _event(key).wait()
    return _published[key]


# -- FIFO helpers (files by path cross every backend) -------------------------

def signal_fifo(path: str, line: str) -> None:
    """Write one line to the FIFO at ``path`` (the test holds it open for
    reading, so this never blocks)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, (line + '\n').encode())
    finally:
        os.close(fd)


async def wait_fifo_eof(path: str) -> None:
    """Wait until every writer of the FIFO at ``path`` has closed it.

    The test holds a writer open before it spawns the readers, and closes it
    to release them all at once.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            # Read first: a reader that opened after the last writer closed
            # gets EOF from read() but never a POLLHUP.
            try:
                if os.read(fd, 4096) == b'':
                    return
            except BlockingIOError:
                pass  # a writer is still there
            await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)


# -- plain RPC targets --------------------------------------------------------

def whoami() -> dict[str, object]:
    actor = ts.current_actor()
    return {'name': actor.name, 'uid': list(actor.uid), 'pid': os.getpid()}


async def add(a: int, b: int) -> int:
    await trio.lowlevel.checkpoint()
    return a + b


def echo(value: object) -> object:
    return value


def surroundings(env_var: str, say: str = '') -> dict[str, object]:
    """What this actor's process looks like from inside: for checking that a
    warm pool member became what a cold fork would have been."""
    if say:
        print(say, flush=True)
    return {
        'env': os.environ.get(env_var),
        'cwd': os.getcwd(),
        'sys_path_head': sys.path[0],
        'pid': os.getpid(),
        'ppid': os.getppid(),
    }


def interpreter() -> dict[str, object]:
    """Which process and interpreter this actor runs in."""
    import _interpreters
    import threading

    current = _interpreters.get_current()
    return {
        'pid': os.getpid(),
        'interp_id': int(current[0] if isinstance(current, tuple) else current),
        'native_thread_id': threading.get_native_id(),
    }


def echo_sys_path() -> list[str]:
    return list(sys.path)


def raise_boom(message: str) -> None:
    raise BoomError(message)


async def raise_boom_after_gate(gate: str, report: str, index: int) -> None:
    """Wait for the test's gate (a FIFO reaching EOF), tell the test (FIFO
    ``report``) and fail."""
    await wait_fifo_eof(gate)
    signal_fifo(report, f'raising {index}')
    raise BoomError(f'boom from actor {index}')


async def raise_boom_async(message: str) -> None:
    await trio.lowlevel.checkpoint()
    raise BoomError(message)


async def sleep_forever() -> None:
    await trio.sleep_forever()


async def sleep_forever_reporting(fifo: str) -> None:
    """Tell the test (FIFO) this actor is sleeping, then sleep forever."""
    signal_fifo(fifo, f'sleeping {os.getpid()}')
    await trio.sleep_forever()


def blocking_sleep(seconds: float, fifo: str | None = None) -> None:
    """The non-checkpointing actor: block the actor's trio thread.

    With ``fifo``, first tell the test that the block is about to begin.
    """
    if fifo is not None:
        signal_fifo(fifo, f'blocking {os.getpid()}')
    time.sleep(seconds)


# -- nested trees --------------------------------------------------------------

async def nested_error(depth: int) -> None:
    """At ``depth`` 0 raise :class:`LeafError`; else spawn a child that runs
    ``nested_error(depth - 1)`` (through ``run_in_actor``)."""
    if depth == 0:
        raise LeafError(f'leaf {ts.current_actor().name} failed on purpose')
    async with ts.open_nursery() as an:
        await an.run_in_actor(nested_error, name=f'depth{depth - 1}', depth=depth - 1)


def parent_pid() -> int:
    return os.getppid()


async def spawn_and_report(start_method: str) -> dict[str, object]:
    """Spawn one child with ``start_method``, have it answer, and report
    where it ran: its pid and its parent's."""
    async with ts.open_nursery(start_method=start_method) as an:
        portal = await an.start_actor('grandchild', enable_modules=['actor_targets'])
        report = {
            'pid': portal.pid,
            'ppid': await portal.run(parent_pid),
            'sum': await portal.run(add, a=2, b=3),
        }
        await portal.cancel_actor()
    return report


async def raise_after_spawning(start_method: str) -> None:
    async with ts.open_nursery(start_method=start_method) as an:
        await an.start_actor('grandchild', enable_modules=['actor_targets'])
        raise LeafError('after spawning')


async def run_blocking_grandchild(seconds: float, fifo: str) -> None:
    """Spawn a grandchild, publish its pid (``'grandchild_pid'``), and make it
    block synchronously for ``seconds``."""
    async with ts.open_nursery() as an:
        portal = await an.start_actor('grandchild', enable_modules=['actor_targets'])
        publish('grandchild_pid', portal.pid)
        await portal.run(blocking_sleep, seconds=seconds, fifo=fifo)


async def hold_grandchild(blocking: bool = False) -> None:
    """Spawn a grandchild, publish its pid (``'grandchild_pid'``) once it is
    ready, and keep it sleeping until cancelled: in trio, or, with
    ``blocking``, in a blocking ``time.sleep`` that no cancel can reach."""
    async with ts.open_nursery() as an:
        portal = await an.start_actor('grandchild', enable_modules=['actor_targets'])
        publish('grandchild_pid', portal.pid)
        if blocking:
            await portal.run(blocking_sleep, seconds=600)
        else:
            await portal.run(sleep_forever)


# -- streaming -----------------------------------------------------------------

async def count_to(n: int):
    for i in range(n):
        yield i


async def count_forever(key: str):
    """Yield 0, 1, 2, ... until cancelled; record how it ended under ``key``
    (read it with :func:`wait_published`)."""
    outcome = 'finished'
    try:
        i = 0
        while True:
            yield i
            i += 1
            await trio.lowlevel.checkpoint()
    except GeneratorExit:
        outcome = 'GeneratorExit'
        raise
    except trio.Cancelled:
        outcome = 'Cancelled'
        raise
    except BaseException as exc:  # pragma: no cover - reported to the test
        outcome = f'unexpected {type(exc).__name__}'
        raise
    finally:
        publish(key, outcome)


# -- plain functions, answered by the message loop itself ----------------------

_CALL_VAR: contextvars.ContextVar[str] = contextvars.ContextVar('_CALL_VAR')
_flags: dict[str, trio.Event] = {}


def set_call_var(value: str) -> str | None:
    """Set a context variable in the call's context; what it held before."""
    before = _CALL_VAR.get(None)
    _CALL_VAR.set(value)
    return before


def doubled_later(x: int):
    """A plain function that returns an awaitable: the caller gets what it
    resolves to."""
    return _double_after_a_checkpoint(x)


async def _double_after_a_checkpoint(x: int) -> int:
    await trio.lowlevel.checkpoint()
    return 2 * x


def plus(a: int, b: int) -> int:
    return a + b


def _flag(key: str) -> trio.Event:
    return _flags.setdefault(key, trio.Event())


async def wait_for_flag(key: str) -> str:
    """Wait until :func:`raise_flag` is called with ``key`` (before or after)."""
    await _flag(key).wait()
    return 'flag seen'


def raise_flag(key: str) -> None:
    _flag(key).set()
