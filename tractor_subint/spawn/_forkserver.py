"""A forkserver: a clean exec'd process that forks actor children for others.

A process that holds a live subinterpreter cannot fork (the child crashes in
CPython's post-fork cleanup, whatever thread forks), and a thread running
inside a subinterpreter cannot fork at all (``ai/conc-anal/``). An actor
hosted in a subinterpreter therefore asks a *forkserver* to fork its
children: a process started with ``exec`` (never ``fork``), that never
creates a subinterpreter, and so can always fork safely.

Four modules, one per part:

- here, the owner side, :func:`start_forkserver` / :class:`Forkserver`: binds
  a listening Unix socket in a private temp dir, then execs the server with
  that socket and a *lifeline* (a pipe read end; the owner keeps the write
  end). The socket is bound before the exec, so its address is usable at
  once: connections queue until the server accepts them. Starting it only
  execs (``subprocess``), so it works from inside a subinterpreter too.
- ``_forkserver_server``, :func:`serve`: one thread, one ``poll()`` loop over
  the listener, the requests, the lifeline and the pidfds of its children.
  Run by ``_forkserver_main``, it imports neither of the other sides.
- ``_forkserver_client``, :func:`spawn_via_forkserver` /
  :class:`ForkserverChild`: the requester side, async (trio), usable from
  inside a subinterpreter.
- ``_forkserver_wire``: the framing and fd passing both ends speak.

Protocol (one connection per child, open for the child's whole life; every
frame is a 4-byte big-endian length plus a UTF-8 JSON object):

1. requester -> server: the request ``{name, entry, boot_payload (base64),
   host, stdio, env, sys_path}`` with the child's IPC socket attached
   (SCM_RIGHTS).
2. server -> requester: ``{"pid": N}`` with a pidfd of the child attached,
   or ``{"error": "..."}`` and the connection closes.
3. server -> requester, once the server has reaped the child:
   ``{"returncode": N, "exception": {type_name, message, traceback} | null}``,
   then the connection closes.

Lifetimes: the requester signals and watches the child through its own
pidfd, which refers to exactly that process: no pid-reuse race, even though
the child is not the requester's. A requester that hangs up early changes
nothing for the child; the server still reaps it. When the lifeline hits EOF
(the owner closed it, or died) the server stops and exits without touching
its children: each one has its own lifeline, its IPC socket to its logical
parent.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from ._exec_child import with_package_on_pythonpath
from ._forkserver_client import (
    STATUS_LOST_RETURNCODE,
    ForkserverChild,
    ForkserverError,
    spawn_via_forkserver,
)
from ._forkserver_server import _SAVED_PYTHONPATH, SERVER_MODULE, main, serve

__all__ = [
    'STATUS_LOST_RETURNCODE',
    'Forkserver',
    'ForkserverChild',
    'ForkserverError',
    'main',
    'serve',
    'spawn_via_forkserver',
    'start_forkserver',
]

DEFAULT_CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`Forkserver.close` waits for the server before killing it."""

_SOCKET_NAME = 'forkserver.sock'
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux, with a NUL


# --- owner side --------------------------------------------------------------

def _server_environment() -> dict[str, str]:
    """Our environment, with our package first on PYTHONPATH so the server
    imports the same code even when it is not installed. The server puts the
    original value back, so its children see the owner's environment."""
    env = dict(os.environ)
    env[_SAVED_PYTHONPATH] = json.dumps(env.get('PYTHONPATH'))
    return with_package_on_pythonpath(env)


def _private_socket_dir() -> str:
    path = tempfile.mkdtemp(prefix='tractor-subint-fs-')
    if len(os.path.join(path, _SOCKET_NAME)) <= _MAX_UNIX_PATH:
        return path
    # $TMPDIR is too deep for a Unix socket address.
    os.rmdir(path)
    return tempfile.mkdtemp(prefix='tractor-subint-fs-', dir='/tmp')


class Forkserver:
    """The owner's handle on a running forkserver (see :func:`start_forkserver`).

    :meth:`close` (or leaving the ``with`` block) ends it. If the owner dies
    instead, the server sees its lifeline hang up and exits by itself.
    """

    def __init__(self, address: str, popen: subprocess.Popen[bytes], lifeline_w: int, tmpdir: str) -> None:
        self.address = address
        """Filesystem path of the server's listening socket."""
        self._popen = popen
        self._lifeline_w = lifeline_w
        self._tmpdir = tmpdir

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
            os.close(fd)
        if self._popen.returncode is None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Forkserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_forkserver() -> Forkserver:
    """Start a forkserver process and return once its address is usable.

    Only execs (``subprocess.Popen``, whose child runs no Python before
    ``exec``), so it is safe while this process holds subinterpreters and
    from inside one. The server inherits our stdio, cwd and environment;
    its children inherit them from it.
    """
    tmpdir = _private_socket_dir()
    address = os.path.join(tmpdir, _SOCKET_NAME)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lifeline_r = lifeline_w = -1
    try:
        listener.bind(address)
        listener.listen(socket.SOMAXCONN)
        lifeline_r, lifeline_w = os.pipe()
        popen = subprocess.Popen(
            [sys.executable, '-m', SERVER_MODULE, str(listener.fileno()), str(lifeline_r)],
            pass_fds=(listener.fileno(), lifeline_r),
            env=_server_environment(),
        )
    except BaseException:
        if lifeline_w >= 0:
            os.close(lifeline_w)
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    finally:
        listener.close()
        if lifeline_r >= 0:
            os.close(lifeline_r)
    return Forkserver(address, popen, lifeline_w, tmpdir)
