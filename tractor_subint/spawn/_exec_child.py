"""``python -m tractor_subint.spawn._exec_child SPEC_FD REPORT_FD``: the
``trio`` backend's fresh process. Runs the same shell as a forked child.

The spec (JSON, see :class:`ChildSpec`) is read from the pipe ``SPEC_FD``
until EOF; if the entry raises, its report goes to ``REPORT_FD`` as a forked
child's does (see ``_child_report``).
"""
from __future__ import annotations

import json
import os
import sys

from ._child_host import host_entry
from ._child_report import write_report
from ._contract import ChildSpec
from ._exit_status import ChildExit, exit_code_of


def _read_all(fd: int) -> bytes:
    chunks = []
    with open(fd, 'rb', closefd=True) as pipe:
        while chunk := pipe.read():
            chunks.append(chunk)
    return b''.join(chunks)


def main(argv: list[str]) -> int:
    spec_fd, report_fd = (int(arg) for arg in argv)
    try:
        obj = json.loads(_read_all(spec_fd))
        spec = ChildSpec.from_json(obj, ipc_fd=int(obj['ipc_fd']))
        return host_entry(spec)
    except SystemExit as exc:
        return exit_code_of(exc)
    except BaseException as exc:
        write_report(report_fd, exc)
        if isinstance(exc, KeyboardInterrupt):
            return int(ChildExit.INTERRUPTED)
        return int(ChildExit.TARGET_RAISED)
    finally:
        os.close(report_fd)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
