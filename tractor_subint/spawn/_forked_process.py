"""A handle on a forked child, shaped like :class:`trio.Process`."""
from __future__ import annotations

import os
import signal
from typing import Self

import trio

from ._child_report import ChildExceptionInfo, read_report, REPORTS
from ._reap import ChildExitStatus

# Fallback poll bounds where pidfds are missing (non-Linux, kernel < 5.3).
_POLL_MIN = 0.005
_POLL_MAX = 0.1


class ChildHandle:
    """What the handles on forked children share, given ``poll``, ``wait``
    and ``send_signal``: :attr:`exit_status`, :meth:`terminate`,
    :meth:`kill`, and :meth:`aclose` (also as ``async with``)."""

    stdin = stdout = stderr = None
    pid: int
    returncode: int | None
    child_exception: ChildExceptionInfo | None

    async def wait(self) -> int:
        raise NotImplementedError

    def send_signal(self, sig: int) -> None:
        raise NotImplementedError

    @property
    def exit_status(self) -> ChildExitStatus | None:
        if self.returncode is None:
            return None
        return ChildExitStatus(self.pid, self.returncode, self.child_exception)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

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


class ForkedProcess(ChildHandle):
    """Supervise a child we forked: ``pid``, :meth:`poll`, :attr:`returncode`,
    ``await`` :meth:`wait` (cancellable), :meth:`terminate`, :meth:`kill`,
    :meth:`send_signal`, and :meth:`aclose` (``async with`` support).

    ``returncode`` follows ``subprocess``: negative for a death by signal.
    After exit, :attr:`child_exception` holds what the child's target raised,
    if it did. Signals go through a pidfd when there is one, so a signal sent
    after the child was reaped can never hit a recycled pid.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.child_exception: ChildExceptionInfo | None = None
        self._pidfd: int | None = None
        self._report_fd = REPORTS.claim(pid)
        if hasattr(os, 'pidfd_open'):
            self._pidfd = os.pidfd_open(pid)
        self._wait_lock = trio.Lock()

    def __repr__(self) -> str:
        state = 'running' if self.returncode is None else f'returncode={self.returncode}'
        return f'<ForkedProcess pid={self.pid} {state}>'

    def poll(self) -> int | None:
        """Reap the child if it has exited; return the returncode or None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped behind our back (e.g. by a blanket waitpid(-1)):
                # the status is lost, not the fact that it ended.
                self._set_exited(0)
            else:
                if pid == self.pid:
                    self._set_exited(os.waitstatus_to_exitcode(status))
        return self.returncode

    def _set_exited(self, returncode: int) -> None:
        self.returncode = returncode
        if self._report_fd is not None:
            fd, self._report_fd = self._report_fd, None
            self.child_exception = read_report(fd)
        self._close_pidfd()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            os.close(fd)

    async def wait(self) -> int:
        """Wait for the child to exit and return its returncode.

        Cancellable: a cancelled wait leaves the child running and unreaped.
        """
        async with self._wait_lock:
            while self.poll() is None:
                if self._pidfd is not None:
                    await trio.lowlevel.wait_readable(self._pidfd)
                else:
                    await self._sleep_until_exited()
        assert self.returncode is not None
        return self.returncode

    async def _sleep_until_exited(self) -> None:
        delay = _POLL_MIN
        while self.poll() is None:
            await trio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child has already been reaped."""
        if self.returncode is not None:
            return
        try:
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def __del__(self) -> None:
        # The child itself is not ours to kill here; only our fds are.
        for fd in (getattr(self, '_pidfd', None), getattr(self, '_report_fd', None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
