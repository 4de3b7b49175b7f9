"""Ctrl-C while the tree's forkserver starts: a nested spawn makes the root
exec the forkserver, and the test hook ``forkserver_sigint_at_exec=1`` sends
SIGINT to the whole process group at that moment (the server's interpreter is
still starting), as a Ctrl-C in the terminal would.

usage: ctrl_c_at_forkserver_start.py; the backend comes from
``$TRACTOR_SUBINT_SPAWN_METHOD`` (one whose nested spawns use the forkserver).
Prints ``FORKSERVER_NOT_USED`` if the nested spawn finished without one; the
uncaught ``KeyboardInterrupt`` otherwise ends it (status 130).
"""
from __future__ import annotations

import pathlib
import sys

import trio

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # tests/

import actor_targets  # noqa: E402

import tractor_subint as ts  # noqa: E402


async def main() -> None:
    async with ts.open_nursery() as an:
        middle = await an.start_actor('middle', enable_modules=['actor_targets'])
        await middle.run(actor_targets.spawn_and_report, start_method=an.start_method)
        print('FORKSERVER_NOT_USED', flush=True)
        await middle.cancel_actor()


if __name__ == '__main__':
    trio.run(main)
