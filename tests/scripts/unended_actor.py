"""A root whose in-process (``subint``) actor cannot end.

usage: python unended_actor.py thread|blocked GATE_FIFO

``thread``: the actor's target leaves a non-daemon thread running, blocked
until GATE_FIFO is released; ``blocked``: a call blocks in ``time.sleep``
for an hour and the root gives up waiting on it after 0.2 s. Prints ``LEFT
name`` / ``GAVE_UP``, then ``NURSERY_DONE`` (or the nursery's error), then
``MAIN_DONE`` once ``trio.run`` has returned: what follows is the process's
exit.
"""
from __future__ import annotations

import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import actor_targets  # noqa: E402
import hostile_targets  # noqa: E402

import tractor_subint as ts  # noqa: E402


async def main(how: str, gate: str) -> None:
    try:
        async with ts.open_nursery(start_method='subint') as an:
            portal = await an.start_actor('stuck', enable_modules=['actor_targets', 'hostile_targets'])
            if how == 'thread':
                left = await portal.run(hostile_targets.leave_thread_running, fifo=gate)
                print('LEFT', left, flush=True)
            else:
                with trio.move_on_after(0.2):
                    await portal.run(actor_targets.blocking_sleep, seconds=3600)
                print('GAVE_UP', flush=True)
            await portal.cancel_actor()
        print('NURSERY_DONE', flush=True)
    except ts.ActorFailure as exc:
        print('NURSERY_ERROR', exc, flush=True)


if __name__ == '__main__':
    trio.run(main, sys.argv[1], sys.argv[2])
    print('MAIN_DONE', flush=True)
