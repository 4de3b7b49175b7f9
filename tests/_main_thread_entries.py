"""Entries for the main-thread host's tests: ``fn(payload, ipc_fd, cancel_fd)``.

Each reports over ``ipc_fd`` (a connected Unix socket) with plain writes.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import trio


def _say(ipc_fd: int, line: str) -> None:
    os.write(ipc_fd, f'{line}\n'.encode())


def where(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Report whether this runs on the main thread and may install a handler."""
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # ValueError off the main thread
    signal.signal(signal.SIGUSR1, previous)
    on_main = threading.current_thread() is threading.main_thread()
    _say(ipc_fd, f'main-thread={on_main} handler-installed=True')


def shield_then_cancel(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Under trio: replace the SIGINT handler with a shield (as a debugger
    does while its REPL owns the terminal), report what reached it, put the
    host's handler back, then wait for the host's cancel byte."""
    trio.run(_shield_then_cancel, ipc_fd, cancel_fd)


async def _shield_then_cancel(ipc_fd: int, cancel_fd: int) -> None:
    shielded = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def shield(signum: int, frame: object) -> None:
        token.run_sync_soon(shielded.set)

    previous = signal.signal(signal.SIGINT, shield)
    _say(ipc_fd, 'shielding')
    await shielded.wait()
    signal.signal(signal.SIGINT, previous)
    _say(ipc_fd, 'shielded, handler restored')
    await trio.lowlevel.wait_readable(cancel_fd)
    _say(ipc_fd, f'cancelled {os.read(cancel_fd, 1)[0]}')


def block_after_first_signal(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Block the main thread in a call no cancellation can interrupt; a
    helper thread reports the host's first cancel byte."""
    def report_first() -> None:
        os.set_blocking(cancel_fd, True)
        _say(ipc_fd, f'first-seen {os.read(cancel_fd, 1)[0]}')

    threading.Thread(target=report_first, daemon=True).start()
    _say(ipc_fd, 'ready')
    time.sleep(60)


def spin(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Compute forever in pure Python, never releasing the GIL by itself."""
    _say(ipc_fd, 'ready')
    while True:
        pass
