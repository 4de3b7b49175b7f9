"""RPC targets defined in ``__main__``, called through ``portal.run`` and
``run_in_actor``.

Run as ``python main_target.py``; the backend comes from
``$TRACTOR_SUBINT_SPAWN_METHOD``. Prints ``BACKEND``, ``RUN`` and
``RUN_IN_ACTOR`` lines (JSON), then ``DONE``.
"""
from __future__ import annotations

import json
import os

import trio

import tractor_subint as ts


def greet(name: str) -> dict[str, object]:
    """A sync target: who answers, and from which module."""
    return {'text': f'hello {name}', 'pid': os.getpid(), 'actor': ts.current_actor().name}


async def square(x: int) -> dict[str, object]:
    await trio.lowlevel.checkpoint()
    return {'value': x * x, 'pid': os.getpid(), 'actor': ts.current_actor().name}


async def main() -> None:
    print('BACKEND', ts.current_start_method(), flush=True)
    async with ts.open_nursery() as an:
        portal = await an.start_actor('mainer', enable_modules=['__main__'])
        print('RUN', json.dumps(await portal.run(greet, name='main')), flush=True)
        squarer = await an.run_in_actor(square, x=7)
        await portal.cancel_actor()
    print('RUN_IN_ACTOR', json.dumps(await squarer.wait_for_result()), flush=True)
    print('DONE', json.dumps({'root_pid': os.getpid()}), flush=True)


if __name__ == '__main__':
    trio.run(main)
