"""The ``trio`` backend: every actor in a fresh ``python -m`` process.

The baseline: slowest to start (a full interpreter start-up and imports),
but nothing is inherited except what is passed on purpose.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys

import trio

from ._contract import SpawnRequest
from ._exec_child import with_package_on_pythonpath
from ._prelude import resolve_stdio_policy

def _stdio_kwargs(request: SpawnRequest) -> dict[str, object]:
    stdio = resolve_stdio_policy(request.stdio)
    if stdio.mode == 'inherit':
        return {}
    if stdio.mode == 'devnull':
        return dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert stdio.path is not None
    out = open(stdio.path, 'ab')  # the child gets its own copy of the fd
    return dict(stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


async def trio_proc(request: SpawnRequest) -> trio.Process:
    """Start ``request`` in a fresh interpreter process; return its handle."""
    argv = [
        sys.executable, '-m', 'tractor_subint.spawn._exec_child',
        request.name, request.entry, str(request.ipc_fd),
        base64.b64encode(request.boot_payload).decode(),
    ]
    stdio = _stdio_kwargs(request)
    try:
        return await trio.lowlevel.open_process(
            argv, pass_fds=(request.ipc_fd,), env=with_package_on_pythonpath({**os.environ, **request.env}), **stdio
        )
    finally:
        out = stdio.get('stdout')
        if hasattr(out, 'close'):
            out.close()  # type: ignore[union-attr]
