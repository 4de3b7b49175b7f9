"""The entry every handle-contract test child runs, whatever started it.

``hold(payload, ipc_fd, cancel_fd)`` says ``ready <pid>`` on its IPC socket,
then waits for one command line there (``exit N`` or ``raise MESSAGE``) or
for its host's cancel byte (a forwarded signal), and acts on it.
"""
from __future__ import annotations

import os
import sys

import trio


def hold(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    command = trio.run(_wait_for_command, ipc_fd, cancel_fd)
    verb, _, arg = command.partition(' ')
    if verb == 'exit':
        sys.exit(int(arg))
    if verb == 'raise':
        raise ValueError(arg)


async def _wait_for_command(ipc_fd: int, cancel_fd: int) -> str:
    os.write(ipc_fd, f'ready {os.getpid()}\n'.encode())
    result = ''
    async with trio.open_nursery() as nursery:
        async def read_command() -> None:
            nonlocal result
            data = b''
            while not data.endswith(b'\n'):
                await trio.lowlevel.wait_readable(ipc_fd)
                chunk = os.read(ipc_fd, 4096)
                if not chunk:
                    break  # parent gone: the host's lifeline handles it
                data += chunk
            result = data.decode().strip()
            nursery.cancel_scope.cancel()

        async def wait_for_cancel() -> None:
            await trio.lowlevel.wait_readable(cancel_fd)
            nursery.cancel_scope.cancel()

        nursery.start_soon(read_command)
        nursery.start_soon(wait_for_cancel)
    return result
