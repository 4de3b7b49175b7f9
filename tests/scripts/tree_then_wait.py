"""A root actor running a depth-3 tree (root -> child -> grandchild), then
waiting to be signalled.

usage: python tree_then_wait.py [--blocking-leaf]

Prints ``READY {"root": pid, "actors": [child, grandchild], "descendants":
[every process below the root]}`` once the whole tree is up, then sleeps
forever. On SIGINT (KeyboardInterrupt out of ``trio.run``) it prints
``INTERRUPTED {"elapsed": seconds since the signal was noticed}`` and exits
130. The backend comes from ``$TRACTOR_SUBINT_SPAWN_METHOD``. With
``--blocking-leaf`` the grandchild sits in a blocking ``time.sleep`` (it
cannot react to any cancellation, only its host's lifeline can end it).
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time
from functools import partial

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/

import actor_targets  # noqa: E402

import tractor_subint as ts  # noqa: E402
from tractor_subint.testing import descendants  # noqa: E402

_interrupted_at: list[float] = []


async def main() -> None:
    async with ts.open_nursery() as an:
        child = await an.start_actor('child', enable_modules=['actor_targets'])
        # This script's own task nursery wraps the Ctrl-C in a group, as any
        # user's would: the actor nursery hands it back as a plain one.
        async with trio.open_nursery() as tn:
            tn.start_soon(partial(
                child.run, actor_targets.hold_grandchild,
                blocking='--blocking-leaf' in sys.argv,
            ))
            grandchild = await child.run(actor_targets.wait_published, key='grandchild_pid')
            ready = {
                'root': os.getpid(),
                'actors': [child.pid, grandchild],
                'descendants': sorted(info.pid for info in descendants()),
            }
            print('READY', json.dumps(ready), flush=True)
            try:
                await trio.sleep_forever()
            except KeyboardInterrupt:
                _interrupted_at.append(time.monotonic())
                raise


if __name__ == '__main__':
    try:
        trio.run(main)
    except KeyboardInterrupt:
        start = _interrupted_at[0] if _interrupted_at else time.monotonic()
        print('INTERRUPTED', json.dumps({'elapsed': time.monotonic() - start}), flush=True)
        sys.exit(130)
    except BaseException as exc:
        # Anything else (a KeyboardInterrupt inside a group included) is a failure.
        print('ERROR', repr(exc), flush=True)
        raise
