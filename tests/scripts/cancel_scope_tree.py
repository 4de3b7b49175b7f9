"""Cancel an actor nursery of sleeping actors by cancelling a trio scope
around it, in a process of its own (so a hang cannot take the test session
down with it).

usage: python cancel_scope_tree.py {cancel_scope,move_on_after} FIFO_DIR

Spawns three ``run_in_actor`` sleepers and one daemon, prints
``READY {"pids": [...]}`` once all of them sleep, cancels the enclosing scope
(``CancelScope.cancel()``, or a ``trio.move_on_after`` whose deadline is moved
to now), and prints ``DONE {"elapsed": s, "cancelled_caught": bool, "error":
repr or null}`` once the scope has exited. The backend comes from
``$TRACTOR_SUBINT_SPAWN_METHOD``.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/

import actor_targets  # noqa: E402

import tractor_subint as ts  # noqa: E402

N_SLEEPERS = 3


async def wait_lines(fd: int, n: int) -> list[str]:
    buffer = b''
    while buffer.count(b'\n') < n:
        await trio.lowlevel.wait_readable(fd)
        try:
            buffer += os.read(fd, 4096)
        except BlockingIOError:
            pass
    return buffer.decode().splitlines()


async def main(mode: str, fifo_dir: str) -> None:
    fifo = os.path.join(fifo_dir, 'sleepers.fifo')
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    if mode == 'cancel_scope':
        scope = trio.CancelScope()
    elif mode == 'move_on_after':
        scope = trio.move_on_after(math.inf)
    else:
        raise SystemExit(f'unknown mode {mode!r}')
    error = None
    started = None
    try:
        with scope:
            async with ts.open_nursery() as an:
                pids = [
                    (await an.run_in_actor(
                        actor_targets.sleep_forever_reporting, name=f'sleeper{i}', fifo=fifo,
                    )).pid
                    for i in range(N_SLEEPERS)
                ]
                daemon = await an.start_actor('daemon', enable_modules=['actor_targets'])
                pids.append(daemon.pid)
                await wait_lines(fd, N_SLEEPERS)
                assert await daemon.run(actor_targets.add, a=1, b=2) == 3
                print('READY', json.dumps({'pids': pids}), flush=True)
                started = trio.current_time()
                if mode == 'cancel_scope':
                    scope.cancel()
                else:
                    scope.deadline = started
                await trio.sleep_forever()
    except BaseException as exc:  # reported, not hidden: the test decides
        error = repr(exc)
    elapsed = None if started is None else trio.current_time() - started
    print('DONE', json.dumps({
        'elapsed': elapsed, 'cancelled_caught': scope.cancelled_caught, 'error': error,
    }), flush=True)


if __name__ == '__main__':
    trio.run(main, *sys.argv[1:])
