"""``python -m tractor_subint demo``: a small actor tree, end to end.

The root spawns two workers; one of them spawns a leaf of its own (nesting,
which under ``subint_forkserver`` goes through the forkserver). The demo
calls functions in each actor, streams from one, shows where each actor runs
(process, interpreter) and how long each spawn took, then cancels the tree.
The functions below are the RPC targets: actors import this module.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator

import trio

import tractor_subint as ts


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


def _row(info: dict[str, object], spawn_ms: float) -> str:
    return (
        f"  {info['actor']:<9} pid {info['pid']:<7} {info['interpreter']:<18} "
        f'spawned in {spawn_ms:7.1f} ms'
    )


async def run_demo(start_method: str | None) -> None:
    method = start_method or ts.current_start_method()
    print(f'tractor_subint demo: spawn backend {method!r}, Python {sys.version.split()[0]}')
    print(f'  root      pid {os.getpid():<7} main')
    async with ts.open_nursery(start_method=method) as an:
        workers = [await an.start_actor(f'worker-{i}', enable_modules=[__name__]) for i in (1, 2)]
        for portal in workers:
            print(_row(await portal.run(where), portal.spawn_time * 1000))
        leaf = await workers[0].run(spawn_leaf)
        print(_row(leaf, float(leaf['spawn_ms'])) + '   (spawned by worker-1)')
        print(f'worker-1: add(x=1, y=2) = {await workers[0].run(add, x=1, y=2)}')
        async with workers[1].open_stream_from(squares, n=6) as stream:
            print(f'worker-2 streamed squares: {[value async for value in stream]}')
        started = time.perf_counter()
        await an.cancel()
        print(f'cancelled the tree in {(time.perf_counter() - started) * 1000:.1f} ms')
