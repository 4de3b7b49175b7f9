"""The requester side of the forkserver: ask for a child, then watch it.

Async (trio) and fork-free, so it works from inside a subinterpreter, which
is the reason the forkserver exists. The child is the server's; what we hold
is a pidfd for it and the connection on which its exit will be reported.
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Any

import trio

from ..._exceptions import PUBLIC_MODULE, ProtocolError, TractorSubintError
from .._contract import HOST_KINDS, ChildSpec, HostKind, SpawnRequest
from .._exit_status import ChildExceptionInfo
from .._fds import close_fds
from .._pidfd import Pidfd, wait_readable_or_closed, wake_waiters
from .._prelude import resolve_stdio_policy
from .._process_handle import ProcessHandle
from .._wire import WireChannel
from ._names import DEATH_NOTICE

SPAWN_REPLY_TIMEOUT = 10.0
"""Seconds a requester waits for the server's reply to a sent request (a
fork takes milliseconds; the server's own start, on first use, well under a
second)."""


class ForkserverError(TractorSubintError, RuntimeError):
    """The forkserver refused a request, or could not be reached."""

    __module__ = PUBLIC_MODULE


def _returncode_from_waitid(result: os.waitid_result) -> int:
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return -result.si_status


def _close_channel(channel: WireChannel) -> None:
    # The rule of _pidfd holds for the channel too: a waiting task may watch it.
    if channel.fileno() >= 0:
        wake_waiters(channel.fileno())
    channel.close()


class ForkserverChild(ProcessHandle):
    """A child forked by a forkserver for us (the :class:`ProcessHandle`
    contract).

    The child is the server's, not ours: we hold a pidfd for it (signals can
    never hit a recycled pid) and the connection on which the server reports
    its exit status and exception.

    If the server dies before reporting (the connection ends without a status
    frame), the exit status is taken from the kernel when the orphan was
    re-parented to us (we are its subreaper); otherwise it is lost:
    :attr:`status_lost` is True and :attr:`exit_status` says why.
    """

    def __init__(self, pid: int, pidfd: int, channel: WireChannel, *, name: str = '') -> None:
        self.pid = pid
        self.name = name
        self.returncode: int | None = None
        self.child_exception = None
        self._pidfd = Pidfd.adopt(pidfd)
        self._channel: WireChannel | None = channel
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
        if not self._exited:
            self._exited = self._pidfd.has_exited()
        return self._exited

    def _collect_status(self) -> None:
        assert self._channel is not None
        self._channel.receive_available()
        try:
            frame = self._channel.next_frame()
        except ProtocolError:
            frame = None
            self._channel.eof = True
        if frame is not None:
            status, fds = frame
            close_fds(fds)
            returncode = status.get('returncode')
            if isinstance(returncode, int):
                self.returncode = returncode
                self.child_exception = _exception_info(status.get('exception'))
                self._release()
                return
            self._channel.eof = True  # unusable frame: as if the server died
        if self._channel.eof:
            self._status_from_kernel()

    def _status_from_kernel(self) -> None:
        fd = self._pidfd.fileno()
        assert fd is not None
        try:
            result = os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            result = None  # not re-parented to us: someone else reaps it
        if result is not None:
            self.returncode = _returncode_from_waitid(result)
        else:
            self._status_lost('the forkserver ended before reporting how this child exited')
        self._release()

    def _release(self) -> None:
        self._pidfd.close()
        if self._channel is not None:
            channel, self._channel = self._channel, None
            _close_channel(channel)

    async def wait(self) -> int:
        """Wait for the child to exit and its status to arrive; return the
        returncode. Cancellable: a cancelled wait leaves the child running."""
        async with self._wait_lock:
            while self.poll() is None:
                # Until the child exits, watch it; then, the server's report.
                if self._exited and self._channel is not None:
                    await wait_readable_or_closed(self._channel.fileno())
                else:
                    await self._pidfd.wait_exited()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` unless the child is known to be gone."""
        if self.returncode is None:
            self._pidfd.send_signal(sig)

    def __del__(self) -> None:
        # The child is not ours to kill here; only our fds are.
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


def _request_frame(
    address: str, request: SpawnRequest, host: HostKind, warm_pool: int | None,
) -> dict[str, Any]:
    # Resolved here: the policy (and $TRACTOR_SUBINT_CHILD_STDIO) is the
    # requester's, and a bad one fails before anything is sent.
    stdio = resolve_stdio_policy(request.stdio)
    child = ChildSpec(
        request.name, request.entry, request.boot_payload, request.ipc_fd, host,
        tree=address, env=dict(request.env), sys_path=list(sys.path),
    )
    return {
        'child': child.to_json(),
        'stdio': stdio.path if stdio.mode == 'file' else stdio.mode,
        'warm_pool': warm_pool,
    }


async def _send_all(channel: WireChannel) -> None:
    while not channel.flush_nowait():
        await trio.lowlevel.wait_writable(channel.fileno())


async def _receive_frame(channel: WireChannel) -> tuple[dict[str, Any], list[int]] | None:
    """The next frame, or None at EOF."""
    while True:
        frame = channel.next_frame()
        if frame is not None:
            return frame
        if channel.eof:
            return None
        await trio.lowlevel.wait_readable(channel.fileno())
        channel.receive_available()


async def spawn_via_forkserver(
    address: str, request: SpawnRequest, *, host: HostKind, warm_pool: int | None = 0,
) -> ForkserverChild:
    """Ask the forkserver at ``address`` to fork a child that hosts
    ``request.entry`` in ``host`` (see ``_child_host``); return a handle on it.

    ``warm_pool`` is the size of the server's warm pool for such children
    (0: fork cold; None: the pool adapts, as a process's own does, dormant
    until the tree's second such request); the backend resolves it from
    ``request.warm_pool`` and ``$TRACTOR_SUBINT_WARM_POOL``.

    The child gets ``request.env`` on top of the server's environment (the
    owner's, when it started the server) and this process's ``sys.path``,
    and belongs to the spawn tree of that forkserver. ``request.ipc_fd`` is
    sent, not given away: the caller still owns it.

    Cancellation: before the request is sent, nothing happens. Once it is,
    the reply is awaited shielded (at most :data:`SPAWN_REPLY_TIMEOUT`
    seconds), and if the caller was cancelled meanwhile, the new child is
    killed and waited for before ``Cancelled`` propagates: a cancelled spawn
    leaves no child behind.

    Raises :class:`ForkserverError` when the server is unreachable, refuses
    the request or does not answer.
    """
    if host not in HOST_KINDS:
        raise ValueError(f'host must be one of {HOST_KINDS}, got {host!r}')
    if warm_pool is not None and warm_pool < 0:
        raise ValueError(f'warm_pool must be a size >= 0, got {warm_pool}')
    frame = _request_frame(address, request, host, warm_pool)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    channel = WireChannel(sock)
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
            except ProtocolError as exc:
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
            close_fds(fds)
            error = reply_obj.get('error', reply_obj)
            if isinstance(error, str) and error.startswith(DEATH_NOTICE):  # the owner's answer
                raise ForkserverError(f'cannot spawn {request.name!r}: {error}')
            raise ForkserverError(f'forkserver refused to spawn {request.name!r}: {error}')
    except BaseException:
        _close_channel(channel)
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
