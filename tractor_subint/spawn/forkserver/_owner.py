"""The owner side of a forkserver: start it, stop it, reap it.

Starting one only execs (``subprocess``, whose child runs no Python before
``exec``), so it is safe while this process holds subinterpreters.
"""
from __future__ import annotations

import errno
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from ...log import get_logger
from .._hooks import hook_enabled
from .._pythonpath import with_package_on_pythonpath
from .._wire import WireChannel
from ._names import DEATH_NOTICE, SAVED_PYTHONPATH, SERVER_MODULE

log = get_logger('spawn')

DEFAULT_CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`Forkserver.close` waits for the server before killing it."""

_SOCKET_NAME = 'forkserver.sock'
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux, with a NUL
DIR_PREFIX = 'tractor-subint-fs-'
"""A forkserver's private directory is ``DIR_PREFIX + '<owner pid>-<random>'``
in the temp dir: a directory whose owner is gone (killed before it could
clean up) is swept by the next owner of the same user (:func:`sweep_stale_dirs`)."""


def _server_environment() -> dict[str, str]:
    """Our environment, with our package first on PYTHONPATH so the server
    imports the same code even when it is not installed. The server puts the
    original value back, so its children see the owner's environment."""
    env = dict(os.environ)
    env[SAVED_PYTHONPATH] = json.dumps(env.get('PYTHONPATH'))
    return with_package_on_pythonpath(env)


def _private_socket_dir() -> str:
    prefix = f'{DIR_PREFIX}{os.getpid()}-'
    sweep_stale_dirs(tempfile.gettempdir())
    path = tempfile.mkdtemp(prefix=prefix)
    if len(os.path.join(path, _SOCKET_NAME)) <= _MAX_UNIX_PATH:
        return path
    # $TMPDIR is too deep for a Unix socket address.
    os.rmdir(path)
    sweep_stale_dirs('/tmp')
    return tempfile.mkdtemp(prefix=prefix, dir='/tmp')


def sweep_stale_dirs(parent: str) -> list[str]:
    """Remove the forkserver directories in ``parent`` whose owner process is
    gone (a root killed by SIGKILL, or by a SIGTERM it had no handler for,
    cannot remove its own); return the paths removed.

    Only this user's directories are touched, and only those named with a
    pid (``DIR_PREFIX`` + pid + ``-``) that is no longer alive. A pid reused
    by a live process keeps its directory until that process is gone too.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        pid_text, sep, _rest = entry.name.removeprefix(DIR_PREFIX).partition('-')
        if not entry.name.startswith(DIR_PREFIX) or not sep or not pid_text.isdigit():
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


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
    # The server starts with SIGINT blocked, and ignores it (then unblocks
    # it) before anything else: it shares the terminal's process group, and a
    # Ctrl-C during its interpreter's start-up would otherwise kill it with
    # "Fatal Python error: init_import_site" and a traceback. The exec keeps
    # the forking thread's signal mask; ours is restored at once.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
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
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(lifeline_r)
    if hook_enabled('forkserver_sigint_at_exec'):
        os.killpg(os.getpgrp(), signal.SIGINT)
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
    when the first request connects (socket activation), and starts again
    after it died.

    A watcher thread polls the bound listener; the first connection makes it
    exec the server on that listener, which then accepts the queued request.
    Until then the forkserver costs a socket and an idle thread, no process.
    While the server runs, the watcher holds a pidfd of it: if it dies (a
    SIGKILL, the OOM killer), the requests it left queued are answered at once
    with why (``the tree's forkserver (pid N) died: signal 9``), and the next
    request starts a new server: the tree heals.
    :meth:`close` stops the watcher, and the server if it was started.
    """

    def __init__(self) -> None:
        self.address, self._listen_fd = _bind_listener()
        self._stop_r, self._stop_w = os.pipe()
        self._lock = threading.Lock()
        self._server: tuple[subprocess.Popen[bytes], int] | None = None
        self._start_error: BaseException | None = None
        self._started = threading.Condition(self._lock)
        self.starts = 0
        """How many server processes were started (more than one: it died and healed)."""
        self.deaths = 0
        """How many of them died on their own (not stopped by :meth:`close`)."""
        self.last_death: str | None = None
        """Why the last server died, if one did: ``the tree's forkserver (pid N) died: ...``."""
        self._watcher = threading.Thread(
            target=self._watch, name='tractor-subint-forkserver-activator', daemon=True,
        )
        self._watcher.start()

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs; None until a request needed it
        (and after it died, until the next one does)."""
        server = self._server
        return None if server is None else server[0].pid

    def __repr__(self) -> str:
        state = f'pid={self.pid}' if self.pid is not None else 'not started'
        return f'<OnDemandForkserver {state} address={self.address!r}>'

    def wait_started(self, count: int, timeout: float) -> int | None:
        """Block until the ``count``-th server has started; its pid (None
        after ``timeout`` seconds). For tests and diagnostics."""
        with self._started:
            self._started.wait_for(lambda: self.starts >= count, timeout)
            return self.pid if self.starts >= count else None

    def wait_deaths(self, count: int, timeout: float) -> bool:
        """Block until ``count`` servers have died and been noticed (the
        requests they left answered); False after ``timeout`` seconds."""
        with self._started:
            return self._started.wait_for(lambda: self.deaths >= count, timeout)

    def _watch(self) -> None:
        while self._wait_readable(self._listen_fd):
            try:
                server = _exec_server(self._listen_fd)
            except BaseException as exc:  # reported by close(); requesters time out
                self._start_error = exc
                print(f'tractor_subint: cannot start the forkserver: {exc!r}', file=sys.stderr)
                return
            with self._started:
                self._server = server
                self.starts += 1
                self._started.notify_all()
            log.debug(
                "started the tree's forkserver (pid %d, start %d) for a request", server[0].pid, self.starts,
            )
            if not self._watch_server(*server):
                return

    def _watch_server(self, popen: subprocess.Popen[bytes], lifeline_w: int) -> bool:
        """Until the server dies (then answer what it left queued; True) or
        :meth:`close` (False)."""
        pidfd = os.pidfd_open(popen.pid)
        try:
            if not self._wait_readable(pidfd):
                return False
        finally:
            os.close(pidfd)
        returncode = popen.wait()
        death = f'{DEATH_NOTICE} (pid {popen.pid}) died: {_describe_returncode(returncode)}'
        with self._lock:
            self._server = None
            self.last_death = death
        os.close(lifeline_w)
        print(f'tractor_subint: {death}; the next spawn starts a new one', file=sys.stderr)
        self._refuse_queued(death)
        with self._started:
            self.deaths += 1
            self._started.notify_all()
        return True

    def _wait_readable(self, fd: int) -> bool:
        """Until ``fd`` is readable (True) or :meth:`close` is called (False)."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            try:
                ready = {ready_fd for ready_fd, _mask in poller.poll()}
            except InterruptedError:
                continue
            if self._stop_r in ready:
                return False
            if fd in ready:
                return True

    def _refuse_queued(self, why: str) -> None:
        """Answer every request the dead server left in the listener's
        backlog with ``why``: they were sent to it, and would otherwise wait
        for a reply that nobody is going to write.

        All are accepted before any is answered: a requester told first may
        ask again at once, and that new request is the next server's.
        """
        listener = socket.socket(fileno=self._listen_fd)
        queued: list[socket.socket] = []
        try:
            listener.setblocking(False)  # as every server sets it (one shared file)
            while True:
                try:
                    queued.append(listener.accept()[0])
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                        print(f'tractor_subint: accept failed: {exc!r}', file=sys.stderr)
                    break
        finally:
            listener.detach()  # the fd stays ours
        for conn in queued:
            channel = WireChannel(conn)
            channel.queue({'error': why})
            try:
                channel.flush_nowait()  # a small frame into an empty buffer
            except OSError:
                pass  # the requester gave up already
            channel.close()
            conn.close()

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


def _describe_returncode(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = 'unknown signal'
        return f'signal {-returncode} ({name})'
    return f'exit status {returncode}'
