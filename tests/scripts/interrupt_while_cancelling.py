"""Ctrl-C while the root is inside ``ActorNursery.cancel()`` (its kill ladder
waiting on an actor stuck in a blocking call), the interrupt landing inside
the runtime's own nurseries.

usage: interrupt_while_cancelling.py FIFO [SECONDS]; the stuck actor blocks
for SECONDS (default 30).

Prints ``CANCELLING {"actors": [pids]}`` right before ``an.cancel()``, then
``INTERRUPTED`` and exits 130 on a plain ``KeyboardInterrupt`` out of
``trio.run``; anything else (a group included) prints ``ERROR`` and fails.
The backend comes from ``$TRACTOR_SUBINT_SPAWN_METHOD``.
"""
from __future__ import annotations

import json
import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/

import actor_targets  # noqa: E402

import tractor_subint as ts  # noqa: E402


async def main() -> None:
    async with ts.open_nursery() as an:
        stuck = await an.start_actor('stuck', enable_modules=['actor_targets'])
        idle = await an.start_actor('idle', enable_modules=['actor_targets'])
        fifo = sys.argv[1]
        seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
        async with trio.open_nursery() as tn:
            tn.start_soon(lambda: stuck.run(actor_targets.blocking_sleep, seconds=seconds, fifo=fifo))
            # The stuck actor says so (FIFO) just before it blocks.
            async with await trio.open_file(fifo, 'rb') as reports:
                await reports.readline()
            print('CANCELLING', json.dumps({'actors': [stuck.pid, idle.pid]}), flush=True)
            await an.cancel()  # waits CANCEL_ACK_TIMEOUT on the stuck actor


if __name__ == '__main__':
    try:
        trio.run(main)
    except KeyboardInterrupt:
        print('INTERRUPTED', flush=True)
        sys.exit(130)
    except BaseException as exc:
        print('ERROR', repr(exc), flush=True)
        raise
