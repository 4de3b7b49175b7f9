"""A script that starts trio when imported (no ``__name__`` guard) and
enables its own module in an actor: an actor that must import the script
fails with a message saying what to do. Prints ``DONE`` if the actor could
run the script's function anyway (a forked child already has the module)."""
from __future__ import annotations

import trio

import tractor_subint as ts


def hello() -> str:
    return 'hello'


async def main() -> None:
    async with ts.open_nursery() as an:
        portal = await an.start_actor('importer', enable_modules=['__main__'])
        assert await portal.run(hello) == 'hello'
        await portal.cancel_actor()
    print('DONE', flush=True)


trio.run(main)
