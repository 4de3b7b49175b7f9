"""A handle on a child this process forked, shaped like :class:`trio.Process`."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import trio

from ._child_report import REPORTS, ReportPipe
from ._fork import fork_with_report
from ._pidfd import Pidfd
from ._prelude import StdioPolicy
from ._process_handle import ProcessHandle


class ForkedProcess(ProcessHandle):
    """Supervise a child we forked (the :class:`ProcessHandle` contract).

    We are its parent, so :meth:`poll` reaps it with ``waitpid``; a pidfd
    wakes :meth:`wait` and carries signals. After exit,
    :attr:`child_exception` holds what the child's target raised, read from
    its report pipe. ``report_fd`` is that pipe's read end (the handle owns
    it); without one, the handle claims the one :func:`fork_from_worker_thread`
    registered for ``pid``, if any.
    """

    def __init__(self, pid: int, *, report_fd: int | None = None) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.child_exception = None
        self._report = ReportPipe(REPORTS.claim(pid) if report_fd is None else report_fd)
        self._pidfd = Pidfd(pid)
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
                # Reaped behind our back (e.g. by a blanket waitpid(-1)).
                self._status_lost('the child was reaped by someone else')
                self._release()
            else:
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    self._release()
        return self.returncode

    def _release(self) -> None:
        report = self._report.take()
        if self.child_exception is None:  # not a lost status
            self.child_exception = report
        self._pidfd.close()

    async def wait(self) -> int:
        """Wait for the child to exit and return its returncode.

        Cancellable: a cancelled wait leaves the child running and unreaped.
        """
        # One task at a time watches the pidfd (trio allows one waiter per fd).
        async with self._wait_lock:
            while self.poll() is None:
                await self._pidfd.wait_exited()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child has already been reaped."""
        if self.returncode is None:
            self._pidfd.send_signal(sig)


def fork_process(
    child_target: Callable[[], object] | None = None,
    *,
    thread_name: str = 'tractor-subint-forker',
    keep_fds: Iterable[int] = (),
    stdio: StdioPolicy | None = None,
) -> ForkedProcess:
    """:func:`fork_from_worker_thread`, returning a :class:`ForkedProcess`
    that owns the child's report pipe. Blocking, like the fork itself."""
    pid, report_fd = fork_with_report(
        child_target, thread_name=thread_name, keep_fds=keep_fds, stdio=stdio,
    )
    return ForkedProcess(pid, report_fd=report_fd)
