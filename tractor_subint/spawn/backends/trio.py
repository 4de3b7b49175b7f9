"""The ``trio`` backend: every actor in a fresh ``python -m`` process.

The baseline: slowest to start (a full interpreter start-up and imports),
but nothing is inherited except what is passed on purpose. The child runs
the same shell as a forked one (``_exec_child``); its spec arrives on a pipe,
not in its arguments, so a long ``sys.path`` in the boot payload cannot
overflow the argument list.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import IO

import trio

from .._child_report import ReportPipe
from .._contract import ChildSpec, SpawnRequest
from .._prelude import resolve_stdio_policy
from .._process_handle import ProcessHandle
from .._pythonpath import with_package_on_pythonpath
from .._tree import current_forkserver_address

EXEC_CHILD_MODULE = 'tractor_subint.spawn._exec_child'


class ExecProcess(ProcessHandle):
    """A child started by exec (the :class:`ProcessHandle` contract).

    Wraps a :class:`trio.Process`, which keeps the pidfd rule itself, and
    reads the child's exception report when it has exited.
    """

    def __init__(self, process: trio.Process, report_fd: int) -> None:
        self.pid = process.pid
        self.returncode: int | None = None
        self.child_exception = None
        self._process = process
        self._report = ReportPipe(report_fd)

    def __repr__(self) -> str:
        state = 'running' if self.returncode is None else f'returncode={self.returncode}'
        return f'<ExecProcess pid={self.pid} {state}>'

    def _exited(self, returncode: int) -> int:
        if self.returncode is None:
            self.returncode = returncode
            self.child_exception = self._report.take()
        return returncode

    def poll(self) -> int | None:
        returncode = self._process.poll()
        return None if returncode is None else self._exited(returncode)

    async def wait(self) -> int:
        return self._exited(await self._process.wait())

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            self._process.send_signal(sig)


Stdio = tuple[int | IO[bytes] | None, int | IO[bytes] | None, int | IO[bytes] | None]


def _stdio_files(request: SpawnRequest) -> Stdio:
    """``(stdin, stdout, stderr)`` for the child, per its stdio policy."""
    stdio = resolve_stdio_policy(request.stdio)
    if stdio.mode == 'inherit':
        return None, None, None
    if stdio.mode == 'devnull':
        return subprocess.DEVNULL, subprocess.DEVNULL, subprocess.DEVNULL
    assert stdio.path is not None
    out = open(stdio.path, 'ab')  # noqa: SIM115 (closed once the child has its copy)
    return subprocess.DEVNULL, out, subprocess.STDOUT


async def _send_spec(fd: int, spec: bytes) -> None:
    """Write the child's spec into its pipe; a child that died first makes
    the handshake report why, not this write."""
    async with trio.lowlevel.FdStream(fd) as pipe:
        try:
            await pipe.send_all(spec)
        except trio.BrokenResourceError:
            pass


async def trio_proc(request: SpawnRequest) -> ExecProcess:
    """Start ``request`` in a fresh interpreter process; return its handle."""
    spec_r, spec_w = os.pipe()
    report_r, report_w = os.pipe()
    stdin, stdout, stderr = _stdio_files(request)
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, '-m', EXEC_CHILD_MODULE, str(spec_r), str(report_w)],
            pass_fds=(request.ipc_fd, spec_r, report_w),
            env=with_package_on_pythonpath({**os.environ, **request.env}),
            stdin=stdin, stdout=stdout, stderr=stderr,
        )
    except BaseException:
        os.close(spec_w)
        os.close(report_r)
        raise
    finally:
        os.close(spec_r)
        os.close(report_w)
        if not isinstance(stdout, int) and stdout is not None:
            stdout.close()
    handle = ExecProcess(process, report_r)
    spec = ChildSpec(
        request.name, request.entry, request.boot_payload, request.ipc_fd, 'main',
        tree=current_forkserver_address(), sys_path=list(sys.path),
    )
    await _send_spec(spec_w, json.dumps({**spec.to_json(), 'ipc_fd': request.ipc_fd}).encode())
    return handle
