"""Find the processes a test left behind, and make sure orphans come home.

A forked child whose parent dies is re-parented to the nearest *subreaper*
ancestor (else to pid 1). A test session that makes itself a subreaper gets
every orphan of its descendants back as its own child: it can reap it, and
nothing it spawned can escape the leak check.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    state: str
    cmdline: str
    comm: str = ''
    """The process name (``ts:...`` for ours); a zombie keeps it."""

    @property
    def is_zombie(self) -> bool:
        return self.state == 'Z'

    def __str__(self) -> str:
        # A zombie has no command line left, only its name.
        zombie = f' (zombie: exited, not reaped) [{self.comm}]' if self.is_zombie else ''
        return f'pid={self.pid} ppid={self.ppid} state={self.state}{zombie} {self.cmdline!r}'


def _read_proc(pid: int) -> ProcInfo | None:
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read().decode(errors='replace')
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            cmdline = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is parenthesised and may itself contain spaces or ')'.
    comm = stat[stat.index('(') + 1:stat.rindex(')')]
    fields = stat[stat.rindex(')') + 2:].split()
    return ProcInfo(pid, int(fields[1]), fields[0], cmdline, comm)


def list_processes() -> list[ProcInfo]:
    procs = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            info = _read_proc(int(entry))
            if info is not None:
                procs.append(info)
    return procs


def descendants(root: int | None = None) -> list[ProcInfo]:
    """Every live or zombie process below ``root`` (default: this process)."""
    root = os.getpid() if root is None else root
    children: dict[int, list[ProcInfo]] = {}
    for info in list_processes():
        children.setdefault(info.ppid, []).append(info)
    found, stack = [], [root]
    while stack:
        for info in children.get(stack.pop(), []):
            found.append(info)
            stack.append(info.pid)
    return found


def become_subreaper(enable: bool = True) -> bool:
    """Make this process adopt its descendants' orphans (Linux only).

    Returns whether it worked.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool | None:
    """Whether this process is a subreaper already; None if unknown."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return bool(flag.value)
