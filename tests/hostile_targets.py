"""RPC targets that behave as a careless or hostile user's code would, for
``tests/runtime/test_hostile_user.py`` (issue 9). Module level, importable as
``hostile_targets`` in every actor, like ``actor_targets``."""
from __future__ import annotations

import os
import select
import struct

import tractor_subint as ts


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


class Opaque:
    """No codec carries this."""


def return_unencodable() -> object:
    return Opaque()


async def yield_then_unencodable():
    yield 1
    yield Opaque()


def _parent_socket_fd() -> int:
    """The fd of this actor's socket to its parent (its channel)."""
    chan = ts.current_actor().parent_channel
    assert chan is not None, 'not an actor serving a parent'
    return chan.fileno()


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
    fd, data = _parent_socket_fd(), memoryview(struct.pack('>I', len(body)) + body)
    while data:  # the socket is non-blocking (trio's): wait out a full buffer
        select.select([], [fd], [])
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            pass


def nested_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth):
        value = [value]
    return value


def deeply_nested_reply(codec: str, depth: int, cid: int = 1) -> bytes:
    """A well-formed ``Return`` for call ``cid`` (< 128) in ``codec``
    ('msgpack' or 'marshal') whose value nests ``depth`` lists:
    ``[tag, cid, value]``, written by hand (the encoders refuse to build it)."""
    from tractor_subint.runtime._msgs import RETURN_TAG

    if codec == 'msgpack':
        return bytes([0x93, RETURN_TAG, cid]) + b'\x91' * depth + b'\x90'
    one_item, no_items = b'[' + struct.pack('<i', 1), b'[' + struct.pack('<i', 0)
    return (
        b'[' + struct.pack('<i', 3) + b'i' + struct.pack('<i', RETURN_TAG) + b'i' + struct.pack('<i', cid)
        + one_item * depth + no_items
    )


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


# -- issue 17: exits, misuse, a target that cuts its own channel ---------------

class Halt(BaseException):
    """A BaseException that is neither SystemExit nor KeyboardInterrupt."""


def exit_with(code: int) -> None:
    raise SystemExit(code)


async def interrupt() -> None:
    raise KeyboardInterrupt


def raise_halt() -> None:
    raise Halt('stop everything')


class Counter:
    """For bound methods, staticmethods and classmethods as targets."""

    def bump(self, n: int) -> int:
        return n + 1

    @staticmethod
    def static_bump(n: int) -> int:
        return n + 1

    @classmethod
    def class_bump(cls, n: int) -> int:
        return n + 1


def sync_counter(n: int) -> list[int]:
    """Records that it ran (see :func:`ran`): a refused call must not run."""
    _ran.append('sync_counter')
    return list(range(n))


async def async_counter(n: int) -> list[int]:
    _ran.append('async_counter')
    return list(range(n))


_ran: list[str] = []


def ran() -> list[str]:
    return list(_ran)


async def close_parent_socket_and_wait() -> None:
    """Close the actor's channel socket, then keep running (as an async
    target that closed "stray" fds and went on with its work would)."""
    import trio

    os.close(_parent_socket_fd())
    await trio.sleep_forever()


def big_bytes(n: int) -> bytes:
    return b'y' * n


def length(value: bytes) -> int:
    return len(value)


def leave_thread_running(fifo: str) -> str:
    """Start a non-daemon thread that blocks until ``fifo`` (a
    ``_rt_helpers.Gate``) is released, and return its name: the actor's
    work is done, the thread is not."""
    import threading

    def hold() -> None:
        with open(fifo, 'rb') as gate:
            gate.read()

    thread = threading.Thread(target=hold, name='left-running', daemon=False)
    thread.start()
    return thread.name
