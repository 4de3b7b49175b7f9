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


def _parent_socket_fd() -> int:
    """The fd of this process's socket to its parent (the actor's channel):
    the socket whose peer is the parent process (``SO_PEERCRED``)."""
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
        finally:
            sock.detach()
        if struct.unpack('3i', creds)[0] == parent:
            return fd
    raise RuntimeError('no socket to the parent process found')


def close_parent_socket() -> int:
    """Close the actor's channel socket, as user code that closes "stray"
    fds would; return the fd closed."""
    fd = _parent_socket_fd()
    os.close(fd)
    return fd


def write_to_parent_socket(body: bytes) -> None:
    """Write one length-prefixed frame of ``body`` on the actor's channel, as
    user code writing to an inherited fd would (the actor's own frames use
    the same framing, so only the body can be wrong)."""
    os.write(_parent_socket_fd(), struct.pack('>I', len(body)) + body)


def nested_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def deeply_nested_msgpack(depth: int, cid: int = 1) -> bytes:
    """A well-formed msgpack ``Return`` for call ``cid`` (< 128) whose value
    nests ``depth`` arrays: ``[tag, cid, value]``, written by hand (an
    encoder refuses to build it)."""
    from tractor_subint.runtime._msgs import RETURN_TAG

    return bytes([0x93, RETURN_TAG, cid]) + b'\x91' * depth + b'\x90'


# -- a fast producer whose progress the test can ask about --------------------

_sent: dict[str, int] = {}
_sent_changed: dict[str, object] = {}


async def produce(key: str, n: int):
    """Yield ``0..n-1`` as fast as the stream takes them. The count of items
    handed over is updated when the generator resumes after each yield: by
    then that item has been sent."""
    import trio

    _sent[key] = 0
    for i in range(n):
        yield i
        _sent[key] = i + 1
        event = _sent_changed.pop(key, None)
        if isinstance(event, trio.Event):
            event.set()


async def wait_sent(key: str, at_least: int) -> int:
    """Return the number of items ``produce(key)`` has sent, once it is at
    least ``at_least``."""
    import trio

    while _sent.get(key, 0) < at_least:
        event = _sent_changed.setdefault(key, trio.Event())
        assert isinstance(event, trio.Event)
        await event.wait()
    return _sent[key]


def sent(key: str) -> int:
    return _sent.get(key, 0)
