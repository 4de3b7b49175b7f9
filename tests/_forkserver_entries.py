"""Entry functions for the forkserver tests' children.

Each is ``fn(payload, ipc_fd, cancel_fd)``, run by ``host_entry`` either in
the child's main interpreter or in a subinterpreter. They talk to the test
over ``ipc_fd`` (a connected Unix socket) with plain ``os.read``/``os.write``.
"""
from __future__ import annotations

import _interpreters
import json
import os
import socket
import sys

import trio

ENV_VAR = 'TRACTOR_SUBINT_FORKSERVER_TEST_VAR'


def echo(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Send one JSON line: the payload back, and where it ran."""
    report = {
        'pid': os.getpid(),
        'interp_id': int(_interpreters.get_current()[0]),
        'payload': payload.decode(),
        'env': os.environ.get(ENV_VAR),
    }
    os.write(ipc_fd, json.dumps(report).encode() + b'\n')


def exit_with(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    sys.exit(int(payload))


def raise_value_error(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    raise ValueError(payload.decode())


def wait_for_cancel(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    """Say 'ready', then wait for the host's cancel byte (a forwarded signal
    or the lifeline) and report it: 'cancelled <byte>'."""
    trio.run(_wait_for_cancel, ipc_fd, cancel_fd)


async def _wait_for_cancel(ipc_fd: int, cancel_fd: int) -> None:
    os.write(ipc_fd, b'ready\n')
    await trio.lowlevel.wait_readable(cancel_fd)
    cause = os.read(cancel_fd, 1)
    try:
        os.write(ipc_fd, f'cancelled {cause[0] if cause else "eof"}\n'.encode())
    except OSError:
        pass  # the lifeline case: nobody is listening any more


def say(payload: bytes, ipc_fd: int, cancel_fd: int) -> None:
    print(payload.decode())


# --- the requester side, run by a test inside a subinterpreter ---------------

async def _receive_line(sock: socket.socket) -> str:
    data = b''
    while not data.endswith(b'\n'):
        await trio.lowlevel.wait_readable(sock)
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError(f'child hung up after {data!r}')
        data += chunk
    return data.decode().rstrip('\n')


async def spawn_from_subinterpreter(address: str, report_fd: int) -> None:
    """Spawn children through the forkserver at ``address`` (or, if empty,
    through one started here), and write what happened to ``report_fd``.

    Meant to run in trio inside a subinterpreter: this process then holds a
    live subinterpreter, so forking here would crash the child.
    """
    from tractor_subint.spawn import SpawnRequest, refuse_unsafe_fork
    from tractor_subint.spawn.forkserver import spawn_via_forkserver, start_forkserver

    lines = []
    try:
        refuse_unsafe_fork()
    except RuntimeError:
        lines.append('fork refused here: True')
    else:
        lines.append('fork refused here: False')
    with trio.fail_after(30):
        forkserver = None if address else start_forkserver()
        try:
            address = address or forkserver.address
            for host in ('main', 'subint'):
                ours, theirs = socket.socketpair()
                with ours, theirs:
                    ours.setblocking(False)
                    request = SpawnRequest(host, f'{__name__}:echo', b'hi', ipc_fd=theirs.fileno())
                    async with await spawn_via_forkserver(address, request, host=host) as child:
                        report = json.loads(await _receive_line(ours))
                assert report['payload'] == 'hi' and report['pid'] == child.pid, report
                interp = 'nonzero' if report['interp_id'] else '0'
                lines.append(f'{host}: rc={child.returncode} interp={interp}')
            ours, theirs = socket.socketpair()
            with ours, theirs:
                ours.setblocking(False)
                request = SpawnRequest('sleeper', f'{__name__}:wait_for_cancel', ipc_fd=theirs.fileno())
                async with await spawn_via_forkserver(address, request, host='subint') as child:
                    assert await _receive_line(ours) == 'ready'
                    child.terminate()
            lines.append(f'terminated subint: rc={child.returncode}')
        finally:
            if forkserver is not None:
                forkserver.close()
    os.write(report_fd, ''.join(f'{line}\n' for line in lines).encode())
