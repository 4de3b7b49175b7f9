"""The parent's handle on a child: one contract for every backend."""
from __future__ import annotations

import abc
import signal
from typing import Self

import trio

from ._exit_status import ChildExceptionInfo, ChildExitStatus

STATUS_LOST_RETURNCODE = 255
""":attr:`ProcessHandle.returncode` when a child's exit status cannot be
known (reaped behind our back, or its forkserver died before reporting it);
:attr:`ProcessHandle.status_lost` tells this apart from a real exit 255."""


class ProcessHandle(abc.ABC):
    """The parent's handle on one child, whatever started it.

    Shaped like :class:`trio.Process`, and the same for every backend (one
    test suite checks every kind against this contract):

    - :attr:`pid`; :attr:`returncode` is None until the child is known to
      have exited, then follows ``subprocess`` (negative for a signal);
    - :meth:`poll` never blocks; ``await`` :meth:`wait` returns the
      returncode. Any number of tasks may wait and poll at once. A cancelled
      wait leaves the child running and the handle usable;
    - :meth:`send_signal`, :meth:`terminate`, :meth:`kill` are harmless no-ops
      once the child is known to have exited (never a recycled pid);
    - :attr:`exit_status` says how it ended, with :attr:`child_exception`
      when its target raised;
    - :meth:`aclose` (or ``async with``) waits for the child, and kills it if
      the wait is cancelled.

    An fd that a waiting task may be watching is closed only through
    :func:`~tractor_subint.spawn._pidfd.close_watched_fd`, so a concurrent
    :meth:`poll` can never strand a waiter.
    """

    stdin = stdout = stderr = None
    """No pipes: a child's stdio follows its ``StdioPolicy``."""
    pid: int
    returncode: int | None
    child_exception: ChildExceptionInfo | None
    """What the child's target raised, once it has exited, if it did."""
    status_lost: bool = False
    """True when :attr:`returncode` is :data:`STATUS_LOST_RETURNCODE`
    because the real status could not be known."""

    @abc.abstractmethod
    def poll(self) -> int | None:
        """The returncode if the child has exited (collecting its status), else None."""

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait until the child has exited; return its returncode."""

    @abc.abstractmethod
    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child, unless it is known to have exited."""

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    @property
    def exit_status(self) -> ChildExitStatus | None:
        """How the child ended; None while it runs."""
        if self.returncode is None:
            return None
        return ChildExitStatus(self.pid, self.returncode, self.child_exception)

    async def aclose(self) -> None:
        """Wait for the child; if cancelled (or failing) meanwhile, kill it
        and wait for it, shielded."""
        try:
            await self.wait()
        finally:
            if self.returncode is None:
                self.kill()
                with trio.CancelScope(shield=True):
                    await self.wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _status_lost(self, why: str) -> None:
        self.status_lost = True
        self.returncode = STATUS_LOST_RETURNCODE
        self.child_exception = ChildExceptionInfo('<exit status lost>', why, '')
