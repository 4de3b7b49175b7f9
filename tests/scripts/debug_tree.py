"""A debug-mode tree for tests/runtime/test_debug_mode.py: ``argv[1]`` picks
what happens (the test feeds the REPL's commands on stdin)."""
from __future__ import annotations

import sys

import trio

import tractor_subint as ts


async def pause_twice(tag: str) -> str:
    await ts.pause()
    breakpoint()  # the sync spelling: the same REPL
    return f'{tag} done'


async def crash() -> None:
    raise LookupError('crashed on purpose')


async def main(mode: str) -> None:
    async with ts.open_nursery(debug_mode=True) as an:
        if mode == 'one':
            portal = await an.run_in_actor(pause_twice, name='child', tag='one')
            print('RESULT', await portal.wait_for_result(), flush=True)
        elif mode == 'two':
            a = await an.run_in_actor(pause_twice, name='alpha', tag='a')
            b = await an.run_in_actor(pause_twice, name='beta', tag='b')
            print('RESULT', await a.wait_for_result(), await b.wait_for_result(), flush=True)
        elif mode == 'crash':
            portal = await an.run_in_actor(crash, name='crasher')
            await portal.wait_for_result()
        elif mode == 'group':
            async with trio.open_nursery() as tasks:
                tasks.start_soon(crash)
        elif mode == 'root':
            await ts.pause()
            print('RESULT root continued', flush=True)


if __name__ == '__main__':
    trio.run(main, sys.argv[1])
