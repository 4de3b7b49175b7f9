"""How a child ended: its exit code vocabulary and, in words, its status."""
from __future__ import annotations

import enum
import signal
from dataclasses import dataclass


class ChildExit(enum.IntEnum):
    """Exit codes of a child started by any backend.

    A target that calls ``sys.exit(n)`` exits with ``n`` instead (``None``
    is 0, a non-integer is 1, as for the interpreter itself).
    """

    OK = 0
    """The target returned."""
    TARGET_RAISED = 70
    """The target raised; the parent can read the exception report."""
    PRELUDE_FAILED = 71
    """The post-fork prelude failed (bad stdio file, ...); report available."""
    PARENT_GONE = 72
    """The child's lifeline hung up (its parent died) and it exited on its own."""
    INTERRUPTED = 130
    """The target raised KeyboardInterrupt (128 + SIGINT)."""


def exit_code_of(exc: SystemExit) -> int:
    """The process exit code ``sys.exit(exc.code)`` stands for."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


@dataclass(frozen=True)
class ChildExceptionInfo:
    """What a child's target raised, as seen from the parent."""

    type_name: str
    """Qualified name of the exception type, e.g. ``builtins.ValueError``."""
    message: str
    traceback: str
    """The formatted traceback, as the child printed it."""

    def __str__(self) -> str:
        return self.traceback.rstrip() or f'{self.type_name}: {self.message}'


@dataclass(frozen=True)
class ChildExitStatus:
    """How a child ended: its ``returncode`` in ``subprocess`` convention
    (negative for a signal) and, when its target raised, the exception."""

    pid: int
    returncode: int
    exception: ChildExceptionInfo | None = None

    @property
    def signal(self) -> signal.Signals | None:
        """The signal that killed the child, if one did."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode)
        except ValueError:
            return None

    def describe(self) -> str:
        """:meth:`summary`, plus the child's traceback when it raised."""
        if self.exception is not None:
            return f'{self.summary()}\n{self.exception}'
        return self.summary()

    def summary(self) -> str:
        """One line: the exit code or signal, and what it means."""
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
        return head

    __str__ = describe


_MEANINGS: dict[int, str] = {
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
