"""RPC targets that behave as a careless or hostile user's code would, for
``tests/runtime/test_hostile_user.py`` (issue 9). Module level, importable as
``hostile_targets`` in every actor, like ``actor_targets``."""
from __future__ import annotations

import os
import socket
import stat
import struct


class UnprintableError(Exception):
    """An error whose ``__str__`` itself raises."""

    def __str__(self) -> str:
        raise ValueError('this error refuses to be printed')


def raise_unprintable() -> None:
    raise UnprintableError()


def raise_huge(megabytes: int) -> None:
    raise ValueError('x' * (megabytes * 1024 * 1024))


def raise_lone_surrogate() -> None:
    raise ValueError('bad text: \udc80 here')


def return_unencodable() -> object:
    return object()


async def yield_then_unencodable():
    yield 1
    yield object()


def close_parent_socket() -> int:
    """Close this process's socket to its parent (the actor's IPC channel),
    as user code that closes "stray" fds would; return the fd closed."""
    parent = os.getppid()
    for fd in range(3, 1024):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
        except OSError:
            continue
        sock = socket.socket(fileno=fd)
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize('3i'))
            peer_pid = struct.unpack('3i', creds)[0]
        finally:
            sock.detach()
        if peer_pid == parent:
            os.close(fd)
            return fd
    raise RuntimeError('no socket to the parent process found')
