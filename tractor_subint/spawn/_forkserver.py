"""A forkserver: a clean exec'd process that forks actor children for others.

A process that holds a live subinterpreter cannot fork (the child crashes in
CPython's post-fork cleanup, whatever thread forks), and a thread running
inside a subinterpreter cannot fork at all (``ai/conc-anal/``). An actor
hosted in a subinterpreter therefore asks a *forkserver* to fork its
children: a process started with ``exec`` (never ``fork``), that never
creates a subinterpreter, and so can always fork safely.

Three parts live here:

- the owner side, :func:`start_forkserver` / :class:`Forkserver`: binds a
  listening Unix socket in a private temp dir, then execs the server with
  that socket and a *lifeline* (a pipe read end; the owner keeps the write
  end). The socket is bound before the exec, so its address is usable at
  once: connections queue until the server accepts them. Starting it only
  execs (``subprocess``), so it works from inside a subinterpreter too.
- the server, :func:`serve`: one thread, one ``poll()`` loop over the
  listener, the requests, the lifeline and the pidfds of its children.
- the requester side, :func:`spawn_via_forkserver` / :class:`ForkserverChild`:
  async (trio), usable from inside a subinterpreter.

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

The requester signals and watches the child through its own pidfd, which
refers to exactly that process: no pid-reuse race, even though the child is
not the requester's. A requester that hangs up early changes nothing for
the child; the server still reaps it. When the lifeline hits EOF (the owner
closed it, or died) the server stops and exits without touching its
children: each one has its own lifeline, its IPC socket to its logical
parent.
"""
from __future__ import annotations

import array
import base64
import collections
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, get_args

import trio

from ._child_host import HostKind, host_entry, set_process_env
from ._child_report import ChildExceptionInfo, take_child_exception
from ._contract import SpawnRequest
from ._fork import fork_from_worker_thread
from ._prelude import resolve_stdio_policy
from ._reap import ChildExitStatus

SERVER_MODULE = 'tractor_subint.spawn._forkserver_main'

MAX_FRAME_BYTES = 64 << 20
"""Largest frame either side accepts (the boot payload travels in base64)."""

SPAWN_REPLY_TIMEOUT = 10.0
"""Seconds a requester waits for the server's reply to a sent request."""

DEFAULT_CLOSE_TIMEOUT = 5.0
"""Seconds :meth:`Forkserver.close` waits for the server before killing it."""

STATUS_LOST_RETURNCODE = 255
""":attr:`ForkserverChild.returncode` when the child's exit status cannot be
known: the server died before reporting it, and the child is not ours to reap.
:attr:`ForkserverChild.status_lost` tells this apart from a real exit 255."""

_HOSTS: tuple[str, ...] = get_args(HostKind)
_HEADER = struct.Struct('>I')
_RECV_CHUNK = 65536
_MAX_FDS = 4  # per message; each side attaches at most one
_ANC_SPACE = socket.CMSG_SPACE(_MAX_FDS * array.array('i').itemsize)
_SAVED_PYTHONPATH = 'TRACTOR_SUBINT_FORKSERVER_SAVED_PYTHONPATH'
_SOCKET_NAME = 'forkserver.sock'
_MAX_UNIX_PATH = 100  # sun_path is 108 bytes on Linux, with a NUL


class ForkserverError(RuntimeError):
    """The forkserver refused a request, or could not be reached."""


class _ProtocolError(Exception):
    """A peer broke the framing (size, JSON, fds): drop the connection."""


# --- framing, shared by both sides ------------------------------------------

def _encode_frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(',', ':')).encode()
    return _HEADER.pack(len(body)) + body


def _fds_from_ancdata(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array('i')
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % fds.itemsize
            fds.frombytes(data[:usable])
    return list(fds)


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _notify_closing(fd: int) -> None:
    """Wake trio tasks waiting on ``fd`` before it is closed (if in trio)."""
    try:
        trio.lowlevel.notify_closing(fd)
    except RuntimeError:
        pass  # not inside trio.run (the server): nobody can be waiting


class _Channel:
    """Frames, with fds attached, over a non-blocking stream socket.

    Never blocks: callers wait for readiness themselves (``poll()`` in the
    server, trio in the requester). Queued fds are duplicated, so the caller
    keeps its own and may close it at any time.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.eof = False
        self._inbuf = bytearray()
        self._infds: list[int] = []
        self._fds_truncated = False
        self._out: collections.deque[tuple[memoryview, list[int]]] = collections.deque()

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def receive_available(self) -> None:
        """Read what the kernel has; set :attr:`eof` on hang-up or reset."""
        while not self.eof and len(self._inbuf) <= _HEADER.size + MAX_FRAME_BYTES:
            try:
                data, ancdata, flags, _ = self.sock.recvmsg(_RECV_CHUNK, _ANC_SPACE)
            except BlockingIOError:
                return
            except OSError:
                self.eof = True
                return
            self._infds.extend(_fds_from_ancdata(ancdata))
            if flags & socket.MSG_CTRUNC:
                self._fds_truncated = True
            if not data:
                self.eof = True
                return
            self._inbuf += data

    def next_frame(self) -> tuple[dict[str, Any], list[int]] | None:
        """The next complete frame and the fds received with it, or None.

        The caller owns the returned fds. Raises :class:`_ProtocolError` on a
        malformed frame.
        """
        if self._fds_truncated:
            raise _ProtocolError('fds were truncated in transit (too many attached)')
        if len(self._inbuf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._inbuf)
        if size > MAX_FRAME_BYTES:
            raise _ProtocolError(f'frame of {size} bytes exceeds the {MAX_FRAME_BYTES} byte limit')
        end = _HEADER.size + size
        if len(self._inbuf) < end:
            return None
        body = bytes(self._inbuf[_HEADER.size:end])
        del self._inbuf[:end]
        # SCM_RIGHTS fds arrive with the first byte of the frame they were
        # sent with, and each side attaches fds only to its first frame.
        fds, self._infds = self._infds, []
        try:
            obj = json.loads(body)
        except ValueError as exc:
            _close_fds(fds)
            raise _ProtocolError(f'frame is not JSON: {exc}') from None
        if not isinstance(obj, dict):
            _close_fds(fds)
            raise _ProtocolError(f'frame is a JSON {type(obj).__name__}, not an object')
        return obj, fds

    def queue(self, obj: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        self._out.append((memoryview(_encode_frame(obj)), [os.dup(fd) for fd in fds]))

    def flush_nowait(self) -> bool:
        """Send queued frames; True once all are sent. Raises ``OSError``
        (``BrokenPipeError``, ...) when the peer is gone."""
        while self._out:
            data, fds = self._out[0]
            ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))] if fds else []
            try:
                sent = self.sock.sendmsg([data], ancdata, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return False
            # Any accepted byte carried the fds: ours are no longer needed.
            _close_fds(fds)
            if sent < len(data):
                self._out[0] = (data[sent:], [])
            else:
                self._out.popleft()
        return True

    def close(self) -> None:
        for _data, fds in self._out:
            _close_fds(fds)
        self._out.clear()
        _close_fds(self._infds)
        self._infds = []
        if self.sock.fileno() >= 0:
            _notify_closing(self.sock.fileno())
        self.sock.close()


# --- owner side --------------------------------------------------------------

def _package_parent_dir() -> str:
    """The directory holding the ``tractor_subint`` package we run from."""
    spawn_dir = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(os.path.dirname(spawn_dir))


def _server_environment() -> dict[str, str]:
    """Our environment, with our package first on PYTHONPATH so the server
    imports the same code even when it is not installed. The server puts the
    original value back, so its children see the owner's environment."""
    env = dict(os.environ)
    original = env.get('PYTHONPATH')
    env[_SAVED_PYTHONPATH] = json.dumps(original)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (_package_parent_dir(), original) if p)
    return env


def _restore_environment() -> None:
    saved = os.environ.pop(_SAVED_PYTHONPATH, None)
    if saved is None:
        return
    original = json.loads(saved)
    if original is None:
        os.environ.pop('PYTHONPATH', None)
    else:
        os.environ['PYTHONPATH'] = original


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


# --- server side -------------------------------------------------------------

@dataclass(frozen=True)
class _ChildSpec:
    name: str
    entry: str
    payload: bytes
    host: HostKind
    stdio: str
    env: dict[str, str]
    sys_path: list[str] | None
    ipc_fd: int

    @classmethod
    def from_request(cls, req: dict[str, Any], fds: list[int]) -> _ChildSpec:
        """Validate a request; raises ``ValueError`` with the reason."""
        if len(fds) != 1:
            raise ValueError(f'expected exactly 1 attached fd (the IPC socket), got {len(fds)}')
        name, entry, host = req.get('name'), req.get('entry'), req.get('host')
        if not isinstance(name, str):
            raise ValueError(f'name must be a string, got {name!r}')
        if not isinstance(entry, str) or ':' not in entry:
            raise ValueError(f"entry must look like 'package.module:function', got {entry!r}")
        if host not in _HOSTS:
            raise ValueError(f'host must be one of {_HOSTS}, got {host!r}')
        try:
            payload = base64.b64decode(req.get('boot_payload', ''), validate=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'boot_payload is not base64: {exc}') from None
        stdio = req.get('stdio')
        if not isinstance(stdio, str):
            raise ValueError(f'stdio must be a string, got {stdio!r}')
        resolve_stdio_policy(stdio)  # validate before forking
        env = req.get('env', {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError('env must map strings to strings')
        sys_path = req.get('sys_path')
        if sys_path is not None and not (
            isinstance(sys_path, list) and all(isinstance(p, str) for p in sys_path)
        ):
            raise ValueError('sys_path must be a list of strings or null')
        return cls(name, entry, payload, host, stdio, env, sys_path, fds[0])


def _forked_child(spec: _ChildSpec) -> NoReturn:
    """The child's target, after the fork prelude."""
    # The server ignores SIGINT (see serve()); the prelude keeps SIG_IGN
    # dispositions as exec would, but an actor must get Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    set_process_env(spec.env)
    if spec.sys_path is not None:
        # Import the entry as the requester would have.
        sys.path[:] = spec.sys_path
    sys.exit(host_entry(spec.entry, spec.payload, spec.ipc_fd, host=spec.host, name=spec.name))


def _fork_child(spec: _ChildSpec) -> int:
    with warnings.catch_warnings():
        # Forking from a dedicated thread is the design (see _fork).
        warnings.filterwarnings(
            'ignore', message=r'This process .* is multi-threaded', category=DeprecationWarning,
        )
        return fork_from_worker_thread(
            partial(_forked_child, spec),
            thread_name=f'forkserver-fork[{spec.name}]',
            keep_fds=(spec.ipc_fd,),
            stdio=spec.stdio,
        )


def _exception_dict(info: ChildExceptionInfo | None) -> dict[str, str] | None:
    if info is None:
        return None
    return {'type_name': info.type_name, 'message': info.message, 'traceback': info.traceback}


@dataclass
class _Child:
    pid: int
    pidfd: int
    channel: _Channel | None
    """Where to report the exit; None once the requester is gone."""


class _Server:
    """The poll loop. Single-threaded (forks borrow a thread for an instant).

    Handlers must tolerate spurious wake-ups: an fd closed while handling one
    event of a batch may be reused before a later event of the same batch.
    """

    def __init__(self, listener: socket.socket, lifeline_fd: int) -> None:
        listener.setblocking(False)
        self._listener = listener
        self._lifeline_fd = lifeline_fd
        self._poller = select.poll()
        self._channels: dict[int, _Channel] = {}
        """Connections we read a request from, or owe output to."""
        self._awaiting_request: set[int] = set()
        self._close_when_flushed: set[int] = set()
        self._children: dict[int, _Child] = {}
        """By pidfd."""
        self._stopping = False

    def serve(self) -> None:
        self._poller.register(self._listener, select.POLLIN)
        self._poller.register(self._lifeline_fd, select.POLLIN)
        while not self._stopping:
            try:
                events = self._poller.poll()
            except InterruptedError:
                continue
            # The whole batch is handled even once stopping: a child reaped
            # here is one less orphan zombie.
            for fd, _mask in events:
                try:
                    self._dispatch(fd)
                except Exception as exc:
                    print(f'tractor_subint forkserver: error on fd {fd}: {exc!r}', file=sys.stderr)
                    if fd in self._channels:
                        self._drop_channel(self._channels[fd])
        self._shutdown()

    def _dispatch(self, fd: int) -> None:
        if fd == self._listener.fileno():
            self._accept()
        elif fd == self._lifeline_fd:
            self._check_lifeline()
        elif fd in self._children:
            self._reap(self._children[fd])
        elif fd in self._channels:
            channel = self._channels[fd]
            if fd in self._awaiting_request:
                self._read_request(channel)
            else:
                self._flush(channel)

    def _check_lifeline(self) -> None:
        try:
            data = os.read(self._lifeline_fd, 512)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            self._stopping = True

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: the connection stays queued; say why.
                print(f'tractor_subint forkserver: accept failed: {exc!r}', file=sys.stderr)
                return
            channel = _Channel(sock)
            self._channels[channel.fileno()] = channel
            self._awaiting_request.add(channel.fileno())
            self._poller.register(channel.fileno(), select.POLLIN)

    def _read_request(self, channel: _Channel) -> None:
        channel.receive_available()
        try:
            frame = channel.next_frame()
        except _ProtocolError as exc:
            self._refuse(channel, f'bad request: {exc}')
            return
        if frame is None:
            if channel.eof:
                self._drop_channel(channel)  # gave up before asking
            return
        self._awaiting_request.discard(channel.fileno())
        request, fds = frame
        try:
            spec = _ChildSpec.from_request(request, fds)
        except ValueError as exc:
            _close_fds(fds)
            self._refuse(channel, f'bad request: {exc}')
            return
        try:
            pid = _fork_child(spec)
        except Exception as exc:
            self._refuse(channel, f'fork failed: {exc!r}')
            return
        finally:
            os.close(spec.ipc_fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            # Cannot happen for an unreaped child of ours; never leave one
            # unwatched if it does.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            take_child_exception(pid)
            self._refuse(channel, f'pidfd_open failed: {exc!r}')
            return
        self._children[pidfd] = _Child(pid, pidfd, channel)
        self._poller.register(pidfd, select.POLLIN)
        channel.queue({'pid': pid}, (pidfd,))
        self._flush(channel)

    def _refuse(self, channel: _Channel, message: str) -> None:
        self._awaiting_request.discard(channel.fileno())
        channel.queue({'error': message})
        self._close_when_flushed.add(channel.fileno())
        self._flush(channel)

    def _flush(self, channel: _Channel) -> None:
        fd = channel.fileno()
        try:
            done = channel.flush_nowait()
        except OSError:
            self._drop_channel(channel)  # the requester is gone
            return
        if done and fd in self._close_when_flushed:
            self._drop_channel(channel)
        elif fd not in self._awaiting_request:
            if not done:
                self._poller.register(fd, select.POLLOUT)  # (re-)registers
            else:
                # A child's connection is idle until its exit is reported.
                try:
                    self._poller.unregister(fd)
                except KeyError:
                    pass

    def _drop_channel(self, channel: _Channel) -> None:
        fd = channel.fileno()
        if fd < 0 or self._channels.get(fd) is not channel:
            return
        del self._channels[fd]
        self._awaiting_request.discard(fd)
        self._close_when_flushed.discard(fd)
        try:
            self._poller.unregister(fd)
        except KeyError:
            pass
        for child in self._children.values():
            if child.channel is channel:
                child.channel = None
        channel.close()

    def _reap(self, child: _Child) -> None:
        try:
            pid, status = os.waitpid(child.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = child.pid, None  # reaped behind our back: unknowable
        if pid == 0:
            return  # not exited yet (spurious wake-up)
        self._poller.unregister(child.pidfd)
        del self._children[child.pidfd]
        os.close(child.pidfd)
        exception = take_child_exception(child.pid)
        channel = child.channel
        if channel is None:
            return
        if status is None:
            # No status frame: the requester treats it as a lost status.
            self._drop_channel(channel)
            return
        channel.queue({
            'returncode': os.waitstatus_to_exitcode(status),
            'exception': _exception_dict(exception),
        })
        self._close_when_flushed.add(channel.fileno())
        self._flush(channel)

    def _shutdown(self) -> None:
        address = self._listener.getsockname()
        self._listener.close()
        if isinstance(address, str) and address:
            for remove, path in ((os.unlink, address), (os.rmdir, os.path.dirname(address))):
                try:
                    remove(path)
                except OSError:
                    pass
        # Report the children that have already exited, without waiting for
        # slow readers; the rest stay ours until we exit, then their
        # requesters fall back (see ForkserverChild).
        for child in list(self._children.values()):
            self._reap(child)
        for channel in list(self._channels.values()):
            channel.close()


def serve(listen_fd: int, lifeline_fd: int) -> None:
    """Run the server on an already listening socket until ``lifeline_fd``
    hits EOF. Must run on the main thread of a process that never creates
    subinterpreters (it would lose the ability to fork)."""
    # Ctrl-C in a terminal reaches the whole process group: the owner decides
    # when we stop (the lifeline), and the children get Ctrl-C themselves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An inherited SIG_IGN would make the kernel reap children behind our back.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.set_blocking(lifeline_fd, False)
    listener = socket.socket(fileno=listen_fd)
    _Server(listener, lifeline_fd).serve()


def main(argv: list[str]) -> int:
    """``python -m tractor_subint.spawn._forkserver_main LISTEN_FD LIFELINE_FD``"""
    if len(argv) != 2:
        print(f'usage: python -m {SERVER_MODULE} LISTEN_FD LIFELINE_FD', file=sys.stderr)
        return 2
    _restore_environment()
    serve(int(argv[0]), int(argv[1]))
    return 0


# --- requester side ----------------------------------------------------------

def _is_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _returncode_from_waitid(result: os.waitid_result) -> int:
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return -result.si_status


class ForkserverChild:
    """A child forked by a forkserver for us, shaped like :class:`trio.Process`
    (and :class:`ForkedProcess`): ``pid``, :meth:`poll`, :attr:`returncode`,
    ``await`` :meth:`wait` (cancellable), :meth:`send_signal`,
    :meth:`terminate`, :meth:`kill`, :meth:`aclose` (``async with``).

    The child is the server's, not ours: we hold a pidfd for it (signals can
    never hit a recycled pid) and the connection on which the server reports
    its exit. ``returncode`` follows ``subprocess`` (negative for a signal);
    :attr:`child_exception` holds what the child's entry raised, if it did.

    If the server dies before reporting (the connection ends without a status
    frame), the exit status is taken from the kernel when the orphan was
    re-parented to us (we are its subreaper); otherwise it is lost:
    ``returncode`` is :data:`STATUS_LOST_RETURNCODE`, :attr:`status_lost` is
    True and :attr:`exit_status` says why.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int, pidfd: int, channel: _Channel, *, name: str = '') -> None:
        self.pid = pid
        self.name = name
        self.returncode: int | None = None
        self.child_exception: ChildExceptionInfo | None = None
        self.status_lost = False
        self._pidfd: int | None = pidfd
        self._channel: _Channel | None = channel
        self._exited = False
        self._wait_lock = trio.Lock()

    def __repr__(self) -> str:
        state = 'running' if self.returncode is None else f'returncode={self.returncode}'
        return f'<ForkserverChild {self.name!r} pid={self.pid} {state}>'

    @property
    def exit_status(self) -> ChildExitStatus | None:
        if self.returncode is None:
            return None
        return ChildExitStatus(self.pid, self.returncode, self.child_exception)

    def poll(self) -> int | None:
        """The returncode once the child has exited and its status arrived."""
        if self.returncode is None and self._child_has_exited():
            self._collect_status()
        return self.returncode

    def _child_has_exited(self) -> bool:
        if not self._exited and self._pidfd is not None:
            self._exited = _is_readable(self._pidfd)
        return self._exited

    def _collect_status(self) -> None:
        assert self._channel is not None
        self._channel.receive_available()
        try:
            frame = self._channel.next_frame()
        except _ProtocolError:
            frame = None
            self._channel.eof = True
        if frame is not None:
            status, fds = frame
            _close_fds(fds)
            returncode = status.get('returncode')
            if isinstance(returncode, int):
                self._set_exited(returncode, _exception_info(status.get('exception')))
                return
            self._channel.eof = True  # unusable frame: as if the server died
        if self._channel.eof:
            self._status_lost_fallback()

    def _status_lost_fallback(self) -> None:
        assert self._pidfd is not None
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            result = None  # not re-parented to us: someone else reaps it
        if result is not None:
            self._set_exited(_returncode_from_waitid(result), None)
            return
        self.status_lost = True
        self._set_exited(STATUS_LOST_RETURNCODE, ChildExceptionInfo(
            type_name='<exit status lost>',
            message='the forkserver ended before reporting how this child exited',
            traceback='',
        ))

    def _set_exited(self, returncode: int, exception: ChildExceptionInfo | None) -> None:
        self.returncode = returncode
        self.child_exception = exception
        self._release()

    def _release(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            _notify_closing(fd)
            os.close(fd)
        if self._channel is not None:
            channel, self._channel = self._channel, None
            channel.close()

    async def wait(self) -> int:
        """Wait for the child to exit and its status to arrive; return the
        returncode. Cancellable: a cancelled wait leaves the child running."""
        async with self._wait_lock:
            while self.poll() is None:
                # Until the child exits, watch it; then, the server's report.
                fd = self._channel.fileno() if self._exited else self._pidfd  # type: ignore[union-attr]
                try:
                    await trio.lowlevel.wait_readable(fd)
                except trio.ClosedResourceError:
                    pass  # poll() in another task finished the job
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child is known to be gone."""
        if self.returncode is not None or self._pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except ProcessLookupError:
            pass  # already reaped by the server

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def aclose(self) -> None:
        """Wait for the child; if cancelled (or failing) meanwhile, kill it and
        wait for it, shielded."""
        try:
            await self.wait()
        finally:
            if self.returncode is None:
                self.kill()
                with trio.CancelScope(shield=True):
                    await self.wait()

    async def __aenter__(self) -> ForkserverChild:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # The child is not ours to kill here; only our fds are.
        pidfd = getattr(self, '_pidfd', None)
        if pidfd is not None:
            try:
                os.close(pidfd)
            except OSError:
                pass
        channel = getattr(self, '_channel', None)
        if channel is not None:
            channel.sock.close()


def _exception_info(obj: object) -> ChildExceptionInfo | None:
    if not isinstance(obj, dict):
        return None
    return ChildExceptionInfo(
        type_name=str(obj.get('type_name', '')),
        message=str(obj.get('message', '')),
        traceback=str(obj.get('traceback', '')),
    )


def _request_frame(request: SpawnRequest, host: HostKind) -> dict[str, Any]:
    # Resolved here: the policy (and $TRACTOR_SUBINT_CHILD_STDIO) is the
    # requester's, and a bad one fails before anything is sent.
    stdio = resolve_stdio_policy(request.stdio)
    return {
        'name': request.name,
        'entry': request.entry,
        'boot_payload': base64.b64encode(request.boot_payload).decode('ascii'),
        'host': host,
        'stdio': stdio.path if stdio.mode == 'file' else stdio.mode,
        'env': dict(request.env),
        'sys_path': list(sys.path),
    }


async def _send_all(channel: _Channel) -> None:
    while not channel.flush_nowait():
        await trio.lowlevel.wait_writable(channel.fileno())


async def _receive_frame(channel: _Channel) -> tuple[dict[str, Any], list[int]] | None:
    """The next frame, or None at EOF."""
    while True:
        frame = channel.next_frame()
        if frame is not None:
            return frame
        if channel.eof:
            return None
        await trio.lowlevel.wait_readable(channel.fileno())
        channel.receive_available()


async def spawn_via_forkserver(address: str, request: SpawnRequest, *, host: HostKind) -> ForkserverChild:
    """Ask the forkserver at ``address`` to fork a child that runs
    ``host_entry(request.entry, request.boot_payload, <its copy of
    request.ipc_fd>, host=host)``; return a handle on it.

    The child gets ``request.env`` on top of the server's environment (the
    owner's, when it started the server) and this process's ``sys.path``.
    ``request.ipc_fd`` is sent, not given away: the caller still owns it.

    Cancellation: before the request is sent, nothing happens. Once it is,
    the reply is awaited shielded (at most :data:`SPAWN_REPLY_TIMEOUT`
    seconds, a fork takes milliseconds), and if the caller was cancelled
    meanwhile, the new child is killed and waited for before ``Cancelled``
    propagates: a cancelled spawn leaves no child behind.

    Raises :class:`ForkserverError` when the server is unreachable, refuses
    the request or does not answer.
    """
    if host not in _HOSTS:
        raise ValueError(f'host must be one of {_HOSTS}, got {host!r}')
    frame = _request_frame(request, host)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel = _Channel(sock)
    try:
        try:
            await trio.socket.from_stdlib_socket(sock).connect(address)
        except OSError as exc:
            raise ForkserverError(f'cannot reach the forkserver at {address!r}: {exc}') from exc
        channel.queue(frame, (request.ipc_fd,))
        try:
            await _send_all(channel)
        except OSError as exc:
            raise ForkserverError(f'forkserver at {address!r} hung up: {exc}') from exc
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + SPAWN_REPLY_TIMEOUT
            try:
                reply = await _receive_frame(channel)
            except _ProtocolError as exc:
                raise ForkserverError(f'bad reply from the forkserver: {exc}') from None
        if scope.cancelled_caught:
            raise ForkserverError(
                f'no reply from the forkserver at {address!r} within {SPAWN_REPLY_TIMEOUT} s'
            )
        if reply is None:
            raise ForkserverError(f'the forkserver at {address!r} closed the connection before replying')
        reply_obj, fds = reply
        pid = reply_obj.get('pid')
        if 'error' in reply_obj or not isinstance(pid, int) or len(fds) != 1:
            _close_fds(fds)
            raise ForkserverError(
                f'forkserver refused to spawn {request.name!r}: '
                f'{reply_obj.get("error", reply_obj)}'
            )
    except BaseException:
        channel.close()
        raise
    child = ForkserverChild(pid, fds[0], channel, name=request.name)
    try:
        await trio.lowlevel.checkpoint_if_cancelled()
    except BaseException:
        with trio.CancelScope(shield=True):
            child.kill()
            await child.wait()
        raise
    return child
