"""``python -m tractor_subint.spawn._exec_child NAME ENTRY IPC_FD PAYLOAD_B64``:
the ``trio`` backend's fresh process. Runs the same shell as a forked child.

Also home of :func:`with_package_on_pythonpath`, for every process this
package starts by ``exec`` (this one, the forkserver).
"""
from __future__ import annotations

import base64
import os
import sys
import traceback
from collections.abc import Mapping

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def with_package_on_pythonpath(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the directory holding this ``tractor_subint`` first on
    ``PYTHONPATH``: an exec'd ``python -m tractor_subint...`` then imports
    the same code, even when the package is not installed (a checkout)."""
    paths = [_PACKAGE_PARENT, *filter(None, env.get('PYTHONPATH', '').split(os.pathsep))]
    return {**env, 'PYTHONPATH': os.pathsep.join(dict.fromkeys(paths))}


def main(argv: list[str]) -> int:
    from ._child_host import host_entry
    from ._fork import ChildExit, _exit_code_of

    name, entry, ipc_fd, payload = argv
    try:
        return host_entry(entry, base64.b64decode(payload), int(ipc_fd), host='main', name=name)
    except SystemExit as exc:
        return _exit_code_of(exc)
    except KeyboardInterrupt:
        return int(ChildExit.INTERRUPTED)
    except BaseException:
        traceback.print_exc()
        return int(ChildExit.TARGET_RAISED)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
