"""A warm-up preload that holds a pool member mid-warm-up until the test
lets it go, and an entry that says it was hosted.

Imported inside the member's subinterpreter: on import it opens the FIFO
``$TS_POOL_REACHED`` for writing (the test, reading it, then knows the
member is warming right now) and reads the FIFO ``$TS_POOL_GATE`` until
the test closes it.
"""
from __future__ import annotations

import os

_reached = os.environ.get('TS_POOL_REACHED')
if _reached:
    with open(_reached, 'w') as _f:
        _f.write('warming\n')
    with open(os.environ['TS_POOL_GATE']) as _f:
        _f.read()


def entry(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    os.write(ipc_fd, b'hosted:' + payload)
