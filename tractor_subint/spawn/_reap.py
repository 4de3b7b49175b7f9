"""Reap a forked child and say, in words, how it ended."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from ._child_report import ChildExceptionInfo, take_child_exception
from ._fork import ChildExit


@dataclass(frozen=True)
class ChildExitStatus:
    """How a child ended: its ``returncode`` in ``subprocess`` convention
    (negative for a signal) and, when its target raised, the exception."""

    pid: int
    returncode: int
    exception: ChildExceptionInfo | None = None

    @property
    def signal(self) -> signal.Signals | None:
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode)
        except ValueError:
            return None

    def describe(self) -> str:
        """One line (plus the child's traceback when it raised)."""
        rc = self.returncode
        if rc < 0:
            sig = self.signal
            head = f'signal={sig.name if sig else -rc} (killed by signal {-rc})'
        else:
            head = f'rc={rc}'
            meaning = _MEANINGS.get(rc)
            if meaning:
                head += f' ({meaning})'
            elif rc > 128 and _signal_name(rc - 128):
                head += f' (exited after {_signal_name(rc - 128)})'
        if self.exception is not None:
            head += f'\n{self.exception}'
        return head

    __str__ = describe


_MEANINGS = {
    ChildExit.OK: 'exited normally',
    ChildExit.TARGET_RAISED: 'child target raised',
    ChildExit.PRELUDE_FAILED: 'post-fork prelude failed',
    ChildExit.PARENT_GONE: 'parent gone: lifeline hung up',
}


def _signal_name(signum: int) -> str | None:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return None


def status_from_returncode(pid: int, returncode: int) -> ChildExitStatus:
    """Build the status of a reaped child, claiming its exception report."""
    return ChildExitStatus(pid, returncode, take_child_exception(pid))


def wait_child(pid: int, *, expect_exit_ok: bool = True) -> tuple[bool, str]:
    """Block until child ``pid`` exits, reap it, and classify how it ended.

    Returns ``(ok, status)``: ``ok`` is whether the outcome is the expected
    one (exit code 0 when ``expect_exit_ok``, anything else otherwise), and
    ``status`` the human-readable :meth:`ChildExitStatus.describe`.
    """
    _, wait_status = os.waitpid(pid, 0)
    status = status_from_returncode(pid, os.waitstatus_to_exitcode(wait_status))
    return (status.returncode == 0) == expect_exit_ok, status.describe()
