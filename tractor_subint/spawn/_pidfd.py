"""Watch a child through a pidfd, and the one rule for closing watched fds.

A pidfd (Linux >= 5.3) refers to exactly one process, whoever its parent is:
it becomes readable when that process exits, and signals sent through it can
never hit a recycled pid. Both handles on forked children use one.

The rule: a task may be parked in ``trio.lowlevel.wait_readable(fd)`` while
another task finds out, by polling, that the child has exited and releases
the fd. Closing the fd under the waiter without telling trio leaves the
waiter parked forever (or, once the number is reused, watching some other
file). So watched fds are closed with :func:`close_watched_fd`, which wakes
the waiters first, and waiters use :func:`wait_readable_or_closed`, which
treats that wake-up as "look again". ``trio.Process`` follows the same rule.
"""
from __future__ import annotations

import os
import select
import signal

import trio

from ._fds import close_fds


def wake_waiters(fd: int) -> None:
    """Wake any trio task waiting on ``fd``: call it just before closing ``fd``."""
    try:
        trio.lowlevel.notify_closing(fd)
    except RuntimeError:
        pass  # not inside trio.run: nobody can be waiting


def close_watched_fd(fd: int) -> None:
    """Close ``fd``, first waking any trio task waiting on it."""
    wake_waiters(fd)
    os.close(fd)


async def wait_readable_or_closed(fd: int) -> None:
    """Until ``fd`` is readable, or was closed by :func:`close_watched_fd`."""
    try:
        await trio.lowlevel.wait_readable(fd)
    except trio.ClosedResourceError:
        pass


def is_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class Pidfd:
    """A pidfd for ``pid``; :meth:`close` releases it (idempotent)."""

    def __init__(self, pid: int) -> None:
        self._fd: int | None = os.pidfd_open(pid)

    @classmethod
    def adopt(cls, fd: int) -> Pidfd:
        """Take ownership of a pidfd received from elsewhere (a forkserver)."""
        self = cls.__new__(cls)
        self._fd = fd
        return self

    def fileno(self) -> int | None:
        return self._fd

    def has_exited(self) -> bool:
        """Whether the process has exited (it may not be reaped yet)."""
        return self._fd is not None and is_readable(self._fd)

    async def wait_exited(self) -> None:
        """Until the process exits or this pidfd is closed."""
        if self._fd is not None:
            await wait_readable_or_closed(self._fd)

    def send_signal(self, sig: int) -> None:
        """Signal the process; a no-op once it is reaped or this is closed."""
        if self._fd is None:
            return
        try:
            signal.pidfd_send_signal(self._fd, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            close_watched_fd(fd)

    def __del__(self) -> None:
        # Garbage: no task can be waiting on it any more.
        close_fds([getattr(self, '_fd', None)])
