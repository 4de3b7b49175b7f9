"""List processes started by this CI run that are still alive.

Every process the run starts inherits ``TRACTOR_SUBINT_CI_MARK=<token>``
from ``.ci/run``; orphans keep it even after they are re-parented, so the
environment, not the command line or the process tree, says what is ours.
The checker's own ancestors (the ``.ci/run`` shell and its subshells) carry
the mark too and are left out.  Exit status 1 when a stray is found.
"""
import os
import sys

MARK_NAME = "TRACTOR_SUBINT_CI_MARK"


def ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return seen


def carries_mark(pid: int, mark: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return mark in f.read().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


def main() -> int:
    token = os.environ.get(MARK_NAME)
    if not token:
        print(f"strays.py: {MARK_NAME} is not set", file=sys.stderr)
        return 2
    mark = f"{MARK_NAME}={token}".encode()
    exempt = ancestors(os.getpid())
    strays = [
        pid for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        if pid not in exempt and carries_mark(pid, mark)
    ]
    for pid in strays:
        print(f"  {pid} {cmdline(pid)}")
    return 1 if strays else 0


if __name__ == "__main__":
    sys.exit(main())
