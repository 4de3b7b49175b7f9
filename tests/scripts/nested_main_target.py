"""A ``__main__``-defined target two levels down: the root starts ``middle``
with ``enable_modules=[__name__]``; ``middle`` (where this script's
``__name__`` may be ``__mp_main__``) starts ``leaf`` the same way and calls
a function defined here in it. Prints ``LEAF`` (JSON), then ``DONE``.
"""
from __future__ import annotations

import json
import os

import trio

import tractor_subint as ts


def where() -> dict[str, object]:
    return {'actor': ts.current_actor().name, 'pid': os.getpid(), 'module': __name__}


async def spawn_leaf() -> dict[str, object]:
    async with ts.open_nursery() as an:
        leaf = await an.start_actor('leaf', enable_modules=[__name__])
        answer = await leaf.run(where)
        await leaf.cancel_actor()
    return {**answer, 'middle_name': __name__}


async def main() -> None:
    async with ts.open_nursery() as an:
        middle = await an.start_actor('middle', enable_modules=[__name__])
        print('LEAF', json.dumps(await middle.run(spawn_leaf)), flush=True)
        await middle.cancel_actor()
    print('DONE', flush=True)


if __name__ == '__main__':
    trio.run(main)
