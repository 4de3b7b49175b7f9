"""The requester side of the forkserver: ask for a child, then watch it.

Async (trio) and fork-free, so it works from inside a subinterpreter, which
is the reason the forkserver exists. The child is the server's; what we hold
is a pidfd for it and the connection on which its exit will be reported.
"""
from __future__ import annotations

import base64
import os
import select
import signal
import socket
import sys
from typing import Any, get_args

import trio

from ._child_host import HostKind
from ._child_report import ChildExceptionInfo
from ._contract import SpawnRequest
from ._forkserver_wire import _Channel, _close_fds, _notify_closing, _ProtocolError
from ._prelude import resolve_stdio_policy
from ._forked_process import ChildHandle

SPAWN_REPLY_TIMEOUT = 10.0
"""Seconds a requester waits for the server's reply to a sent request."""

STATUS_LOST_RETURNCODE = 255
""":attr:`ForkserverChild.returncode` when the child's exit status cannot be
known: the server died before reporting it, and the child is not ours to reap.
:attr:`ForkserverChild.status_lost` tells this apart from a real exit 255."""

_HOSTS: tuple[str, ...] = get_args(HostKind)


class ForkserverError(RuntimeError):
    """The forkserver refused a request, or could not be reached."""


def _is_readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _returncode_from_waitid(result: os.waitid_result) -> int:
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return -result.si_status


class ForkserverChild(ChildHandle):
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
