"""``python -m tractor_subint demo``: a small actor tree, end to end.

The root spawns two workers; one of them spawns a leaf of its own (nesting,
which under ``subint_forkserver`` goes through the tree's forkserver). The
demo calls functions in each actor, streams from one, shows where each actor
runs (process, interpreter) and how long each spawn took, says why a spawn
was slower than the backend's usual (a cold warm pool, the forkserver's
start), then cancels the tree. The functions below are the RPC targets:
actors import this module.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator

import trio

import tractor_subint as ts
from tractor_subint.runtime._boot import ENTRY
from tractor_subint.spawn import available_start_methods, current_tree, get_backend, local_warm_pool

DEMO_DEFAULT = 'main_thread_forkserver'
"""The demo's backend unless told otherwise: the fastest to a first answer
on Linux (a fork from a main-interpreter thread; no pool to warm, no
forkserver to start), so the first screen shows what the project is for.
The library's own default stays ``trio`` (an exec'd process: slowest, and
the baseline every backend is compared with)."""

FALLBACK = 'trio'
"""The demo's backend where :data:`DEMO_DEFAULT` cannot run (no fork or pidfd)."""


def demo_backend() -> tuple[str, str]:
    """The demo's backend when none is named, and why it is that one."""
    if DEMO_DEFAULT in available_start_methods():
        return DEMO_DEFAULT, f"the demo's default: the fastest here; the library's default is {FALLBACK!r}"
    return FALLBACK, f"the demo's default where {DEMO_DEFAULT!r} cannot run"


def where() -> dict[str, object]:
    """Which actor, process and interpreter this runs in."""
    import _interpreters

    actor = ts.current_actor()
    interp = _interpreters.get_current()
    interp_id = int(interp[0] if isinstance(interp, tuple) else interp)
    return {
        'actor': actor.name,
        'pid': os.getpid(),
        'interpreter': 'main' if interp_id == 0 else f'subinterpreter #{interp_id}',
    }


def add(x: int, y: int) -> int:
    return x + y


async def squares(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i * i
        await trio.sleep(0.01)


async def spawn_leaf() -> dict[str, object]:
    """Spawn a child of this actor, ask it where it runs, cancel it."""
    async with ts.open_nursery() as an:
        leaf = await an.start_actor('leaf', enable_modules=[__name__])
        info: dict[str, object] = await leaf.run(where)
        info['spawn_ms'] = round(leaf.spawn_time * 1000, 1)
        await leaf.cancel_actor()
    return info


HEADER = f"  {'actor':<9} {'pid':<7} {'interpreter':<18} {'spawned in':>10}   note"


def _row(info: dict[str, object], spawn_ms: float | None = None, note: str = '') -> str:
    spawned = '' if spawn_ms is None else f'{spawn_ms:7.1f} ms'
    cells = f"{info['actor']!s:<9} {info['pid']!s:<7} {info['interpreter']!s:<18}"
    return f'  {cells} {spawned:>10}   {note}'.rstrip()


WARMING_NOTE = 'cold: the warm pool was still warming (later spawns take a warm member)'
DORMANT_NOTE = "cold: no warm member yet (the pool warms from a program's second spawn on)"


def _pool_note() -> str:
    """Why the next spawn will find no ready member in this process's warm
    pool (if it keeps one): its members still warm, or it has none yet."""
    pool = local_warm_pool(ENTRY)
    if pool is None or pool.ready_pids():
        return ''
    return WARMING_NOTE if pool.member_pids() else DORMANT_NOTE


async def run_demo(start_method: str | None, why: str = '') -> None:
    method = start_method or ts.current_start_method()
    backend = get_backend(method)
    print(f'tractor_subint demo: spawn backend {method!r}{f" ({why})" if why else ""}, '
          f'Python {sys.version.split()[0]}')
    print(f'  {backend.description}')
    print(HEADER)
    print(_row({'actor': 'root', 'pid': os.getpid(), 'interpreter': 'main'}))
    async with ts.open_nursery(start_method=method) as an:
        workers = []
        for i in (1, 2):
            note = _pool_note()
            portal = await an.start_actor(f'worker-{i}', enable_modules=[__name__])
            print(_row(await portal.run(where), portal.spawn_time * 1000, note))
            workers.append(portal)
        tree = current_tree()
        forkserver_before = tree.forkserver_pid if tree is not None else None
        leaf = await workers[0].run(spawn_leaf)
        forkserver_after = tree.forkserver_pid if tree is not None else None
        note = 'spawned by worker-1'
        if forkserver_after is not None and forkserver_after != forkserver_before:
            note += "; started the tree's forkserver first (a nested spawn's first use)"
        print(_row(leaf, float(str(leaf['spawn_ms'])), note))
        if backend.in_process:
            print(f"  ({method!r} actors are subinterpreters of the root's own process: they share its pid)")
        print(f'worker-1: add(x=1, y=2) = {await workers[0].run(add, x=1, y=2)}')
        async with workers[1].open_stream_from(squares, n=6) as stream:
            print(f'worker-2 streamed squares: {[value async for value in stream]}')
        started = time.perf_counter()
        await an.cancel()
        print(f'cancelled the tree in {(time.perf_counter() - started) * 1000:.1f} ms')
    others = [key for key in available_start_methods() if key != method]
    print(
        f'\nOther backends: scripts/run-demo --spawn-backend KEY (or $TRACTOR_SUBINT_SPAWN_METHOD), '
        f'KEY one of {", ".join(others)}.\n'
        f'All of them side by side, with their spread: python -m tractor_subint bench --quick'
    )
