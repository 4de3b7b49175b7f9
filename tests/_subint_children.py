"""Child targets and subinterpreter bootstraps shared by tests and harnesses.

Bootstraps run inside a fresh subinterpreter, whose ``sys.path`` does not
include this directory: they receive it as the shared ``tests_dir`` global.
"""
from __future__ import annotations

import os

from tractor_subint.spawn._subint_forkserver import run_subint_with_signal_forwarding

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# Waits for a forwarded signal, then reports that its cleanup ran.
SLEEPER_BOOTSTRAP = '''
import os
import trio
from tractor_subint.spawn._subint_forkserver import cancel_on_forwarded_signal

async def main():
    async with cancel_on_forwarded_signal() as seen:
        os.write(report_fd, b'ready\\n')
        await trio.sleep_forever()
    os.write(report_fd, f'cleanup-ran cancelled-by={seen.signum}\\n'.encode())

trio.run(main)
'''

# Serves msgspec frames to the parent over a Unix socket.
PEER_BOOTSTRAP = '''
import sys
sys.path.insert(0, tests_dir)
import trio
import _subint_peer
trio.run(_subint_peer.serve, sock_path)
'''


def host_sleeper(report_fd: int) -> None:
    """Child target: host SLEEPER_BOOTSTRAP, exit 128 + the signal that ended it."""
    raise SystemExit(run_subint_with_signal_forwarding(
        SLEEPER_BOOTSTRAP, shared={'report_fd': report_fd}
    ))


def host_peer(sock_path: str) -> None:
    raise SystemExit(run_subint_with_signal_forwarding(
        PEER_BOOTSTRAP, shared={'sock_path': sock_path, 'tests_dir': TESTS_DIR}
    ))
