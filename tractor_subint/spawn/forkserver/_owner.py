"""The owner side of a forkserver: start it, stop it, reap it.

Starting one only execs (``subprocess``, whose child runs no Python before
``exec``), so it is safe while this process holds subinterpreters.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

from .._pythonpath import with_package_on_pythonpath
from ._names import SAVED_PYTHONPATH, SERVER_MODULE

DEFAULT_CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`Forkserver.close` waits for the server before killing it."""

_SOCKET_NAME = 'forkserver.sock'
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux, with a NUL


def _server_environment() -> dict[str, str]:
    """Our environment, with our package first on PYTHONPATH so the server
    imports the same code even when it is not installed. The server puts the
    original value back, so its children see the owner's environment."""
    env = dict(os.environ)
    env[SAVED_PYTHONPATH] = json.dumps(env.get('PYTHONPATH'))
    return with_package_on_pythonpath(env)


def _private_socket_dir() -> str:
    path = tempfile.mkdtemp(prefix='tractor-subint-fs-')
    if len(os.path.join(path, _SOCKET_NAME)) <= _MAX_UNIX_PATH:
        return path
    # $TMPDIR is too deep for a Unix socket address.
    os.rmdir(path)
    return tempfile.mkdtemp(prefix='tractor-subint-fs-', dir='/tmp')


def _bind_listener() -> tuple[str, int]:
    """A listening Unix socket in a fresh private directory: ``(address, fd)``."""
    tmpdir = _private_socket_dir()
    address = os.path.join(tmpdir, _SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address)
        listener.listen(socket.SOMAXCONN)
    except BaseException:
        listener.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    # A bare fd, not a socket object: nothing to finalise in a forked child.
    return address, listener.detach()


def _exec_server(listen_fd: int) -> tuple[subprocess.Popen[bytes], int]:
    """Exec the server on ``listen_fd``; return it and its lifeline's write end."""
    lifeline_r, lifeline_w = os.pipe()
    try:
        popen = subprocess.Popen(
            [sys.executable, '-m', SERVER_MODULE, str(listen_fd), str(lifeline_r)],
            pass_fds=(listen_fd, lifeline_r),
            env=_server_environment(),
        )
    except BaseException:
        os.close(lifeline_w)
        raise
    finally:
        os.close(lifeline_r)
    return popen, lifeline_w


def _stop_server(popen: subprocess.Popen[bytes], lifeline_w: int, timeout: float) -> None:
    """Close the server's lifeline and reap it; kill it after ``timeout``."""
    os.close(lifeline_w)
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        # Killed, it cannot drain its warm pool: say so, the orphans follow.
        print(
            f'tractor_subint: forkserver {popen.pid} did not stop within {timeout} s: killed',
            file=sys.stderr,
        )
        popen.kill()
        popen.wait()


class Forkserver:
    """The owner's handle on a running forkserver (see :func:`start_forkserver`).

    :meth:`close` (or leaving the ``with`` block) ends it. If the owner dies
    instead, the server sees its lifeline hang up and exits by itself.
    """

    def __init__(self, address: str, popen: subprocess.Popen[bytes], lifeline_w: int) -> None:
        self.address = address
        """Filesystem path of the server's listening socket."""
        self._popen = popen
        self._lifeline_w = lifeline_w

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """The server's exit code once :meth:`close` reaped it."""
        return self._popen.returncode

    def __repr__(self) -> str:
        return f'<Forkserver pid={self.pid} address={self.address!r}>'

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop the server and reap it; its children keep running.

        Blocks until the server exits (it does so promptly once its lifeline
        closes); after ``timeout`` seconds it is killed. Idempotent.
        """
        if self._lifeline_w >= 0:
            fd, self._lifeline_w = self._lifeline_w, -1
            _stop_server(self._popen, fd, timeout)
        shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)

    def __enter__(self) -> Forkserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_forkserver() -> Forkserver:
    """Start a forkserver process and return once its address is usable.

    The socket is bound before the exec, so connections made at once queue
    until the server accepts them. The server inherits our stdio, cwd and
    environment; its children inherit them from it.
    """
    address, listen_fd = _bind_listener()
    try:
        popen, lifeline_w = _exec_server(listen_fd)
    except BaseException:
        shutil.rmtree(os.path.dirname(address), ignore_errors=True)
        raise
    finally:
        os.close(listen_fd)
    return Forkserver(address, popen, lifeline_w)


class OnDemandForkserver:
    """A forkserver whose address is usable at once and whose process starts
    when the first request connects (socket activation).

    A watcher thread polls the bound listener; the first connection makes it
    exec the server on that listener, which then accepts the queued request.
    Until then the forkserver costs a socket and an idle thread, no process.
    :meth:`close` stops the watcher, and the server if it was started.
    """

    def __init__(self) -> None:
        self.address, self._listen_fd = _bind_listener()
        self._stop_r, self._stop_w = os.pipe()
        self._server: tuple[subprocess.Popen[bytes], int] | None = None
        self._start_error: BaseException | None = None
        self._watcher = threading.Thread(
            target=self._start_on_first_request, name='tractor-subint-forkserver-activator',
            daemon=True,
        )
        self._watcher.start()

    @property
    def pid(self) -> int | None:
        """The server's pid once started; None until a request needed it."""
        server = self._server
        return None if server is None else server[0].pid

    def __repr__(self) -> str:
        state = f'pid={self.pid}' if self.pid is not None else 'not started'
        return f'<OnDemandForkserver {state} address={self.address!r}>'

    def _start_on_first_request(self) -> None:
        poller = select.poll()
        poller.register(self._listen_fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        ready = {fd for fd, _mask in poller.poll()}
        if self._stop_r in ready:
            return
        try:
            self._server = _exec_server(self._listen_fd)
        except BaseException as exc:  # reported by close(); requesters time out
            self._start_error = exc
            print(f'tractor_subint: cannot start the forkserver: {exc!r}', file=sys.stderr)

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Stop the watcher and the server (if started), remove the address.
        Blocking; idempotent."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b'x')
        self._watcher.join()
        for fd in (self._stop_w, self._stop_r, self._listen_fd):
            os.close(fd)
        self._stop_w = self._stop_r = self._listen_fd = -1
        if self._server is not None:
            _stop_server(*self._server, timeout)
        shutil.rmtree(os.path.dirname(self.address), ignore_errors=True)
