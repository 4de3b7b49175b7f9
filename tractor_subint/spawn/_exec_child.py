"""``python -m tractor_subint.spawn._exec_child NAME ENTRY IPC_FD PAYLOAD_B64``:
the ``trio`` backend's fresh process. Runs the same shell as a forked child."""
from __future__ import annotations

import base64
import sys
import traceback


def main(argv: list[str]) -> int:
    from ._child_host import host_entry
    from ._fork import ChildExit

    name, entry, ipc_fd, payload = argv
    try:
        return host_entry(entry, base64.b64decode(payload), int(ipc_fd), host='main', name=name)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        return int(ChildExit.INTERRUPTED)
    except BaseException:
        traceback.print_exc()
        return int(ChildExit.TARGET_RAISED)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
