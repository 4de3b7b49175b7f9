"""The package's log lines as an application sees them.

Run as ``python log_lines.py MODE``; the backend comes from
``$TRACTOR_SUBINT_SPAWN_METHOD``. MODE says how the application configures
logging: ``app`` (``logging.basicConfig(level=DEBUG)``), ``code``
(``enable_console('debug')``, nothing else), ``none``. Spawns one actor,
calls it, cancels it; prints ``WORKER`` (its pid, JSON), then ``DONE``.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import trio

import tractor_subint as ts
from tractor_subint.log import enable_console


def whoami() -> int:
    return os.getpid()


async def main() -> None:
    async with ts.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=['__main__'])
        print('WORKER', json.dumps({'pid': await portal.run(whoami)}), flush=True)
        await portal.cancel_actor()
    print('DONE', flush=True)


if __name__ == '__main__':
    mode = sys.argv[1]
    if mode == 'app':
        logging.basicConfig(level=logging.DEBUG)
    elif mode == 'code':
        enable_console('debug')
    trio.run(main)
