"""A trio parent that forks a subint-hosted child and then waits to be killed.

usage: python _orphan_harness.py REPORT_FD

Prints the child's pid on stdout. The child writes its lines to REPORT_FD,
which this harness inherits from the test (``pass_fds``).
"""
from __future__ import annotations

import os
import sys

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _childio import fork_child  # noqa: E402
from _subint_children import host_sleeper  # noqa: E402


async def main(report_fd: int) -> None:
    pid = await fork_child(
        lambda: host_sleeper(report_fd), keep_fds=(report_fd,), stdio='devnull'
    )
    os.close(report_fd)
    print(pid, flush=True)
    await trio.sleep_forever()  # until the test SIGKILLs us


if __name__ == '__main__':
    trio.run(main, int(sys.argv[1]))
