"""The forkserver process: one thread, one ``poll()`` loop that forks children.

Started by the owner side (``_owner``) as
``python -m tractor_subint.spawn.forkserver LISTEN_FD LIFELINE_FD``.
It serves one request per connection, forks the child from a borrowed worker
thread, then keeps the connection to report the child's exit once reaped.
It stops when its lifeline hits EOF; its children outlive it.

Kept apart from the owner and requester sides, and trio-free, so that the
server process imports only what it runs (checked by a test).
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

from ..._exceptions import ProtocolError
from .._child_host import run_forked_child
from .._child_report import read_report
from .._contract import ChildSpec
from .._exit_status import ChildExceptionInfo
from .._fds import close_fds
from .._fork import fork_with_report
from .._hooks import hook_enabled
from .._prelude import name_this_process, resolve_stdio_policy
from .._priority import can_hurry
from .._wire import WireChannel
from ..pool._member import WarmUp
from ..pool._owner import PoolDemand, WarmPool, poll_timeout_ms
from ..pool._sizing import Sizing, pool_cap, pool_idle_timeout
from ._names import SAVED_PYTHONPATH, SERVER_MODULE


@dataclass(frozen=True)
class _Request:
    child: ChildSpec
    stdio: str
    warm_pool: int | None
    """The pool's size the requester asked for; None: the pool adapts
    (``pool._sizing``: dormant until the tree's second such request)."""

    @classmethod
    def parse(cls, frame: dict[str, Any], fds: list[int]) -> _Request:
        """Validate a request; raises ``ValueError`` with the reason."""
        if len(fds) != 1:
            raise ValueError(f'expected exactly 1 attached fd (the IPC socket), got {len(fds)}')
        child = frame.get('child')
        if not isinstance(child, dict):
            raise ValueError(f'child must be an object, got {child!r}')
        spec = ChildSpec.from_json(child, ipc_fd=fds[0])
        stdio = frame.get('stdio')
        if not isinstance(stdio, str):
            raise ValueError(f'stdio must be a string, got {stdio!r}')
        resolve_stdio_policy(stdio)  # validate before forking
        warm_pool = frame.get('warm_pool', 0)
        if warm_pool is not None and (not isinstance(warm_pool, int) or warm_pool < 0):
            raise ValueError(f'warm_pool must be a size >= 0 or null, got {warm_pool!r}')
        return cls(spec, stdio, warm_pool)


def _forked_child(request: _Request) -> NoReturn:
    """The child's target, after the fork prelude."""
    # The server ignores SIGINT (see serve()); the prelude keeps SIG_IGN
    # dispositions as exec would, but an actor must get Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run_forked_child(request.child)


def _fork_child(request: _Request) -> tuple[int, int]:
    return fork_with_report(
        partial(_forked_child, request),
        thread_name=f'forkserver-fork[{request.child.name}]',
        keep_fds=(request.child.ipc_fd,),
        stdio=request.stdio,
    )


def _exception_dict(info: ChildExceptionInfo | None) -> dict[str, str] | None:
    if info is None:
        return None
    return {'type_name': info.type_name, 'message': info.message, 'traceback': info.traceback}


@dataclass
class _Child:
    pid: int
    pidfd: int
    report_fd: int
    channel: WireChannel | None
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
        self._channels: dict[int, WireChannel] = {}
        """Connections we read a request from, or owe output to."""
        self._awaiting_request: set[int] = set()
        self._close_when_flushed: set[int] = set()
        self._children: dict[int, _Child] = {}
        """By pidfd."""
        self._pools: dict[str, PoolDemand] = {}
        """Warm pools for subinterpreter-hosted children, by entry, each
        sized and refilled by the rules a process's own pool follows."""
        self._pool_fds: dict[int, WarmPool] = {}
        """Members' control sockets, while they are in a pool."""
        self._stopping = False

    def serve(self) -> None:
        if not hook_enabled('forkserver_ignore_requests'):
            self._poller.register(self._listener, select.POLLIN)
        self._poller.register(self._lifeline_fd, select.POLLIN)
        while not self._stopping:
            try:
                events = self._poller.poll(self._timeout_ms())
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
            if not self._stopping:
                self._refill_pools()
        self._shutdown()

    def _dispatch(self, fd: int) -> None:
        if fd == self._listener.fileno():
            self._accept()
        elif fd == self._lifeline_fd:
            self._check_lifeline()
        elif fd in self._children:
            self._reap(self._children[fd])
        elif fd in self._pool_fds:
            pool = self._pool_fds[fd]
            pool.on_readable(fd)
            if fd not in pool.watched_fds():  # it died while idle
                self._unwatch_member(fd)
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
            channel = WireChannel(sock)
            self._channels[channel.fileno()] = channel
            self._awaiting_request.add(channel.fileno())
            self._poller.register(channel.fileno(), select.POLLIN)

    def _read_request(self, channel: WireChannel) -> None:
        channel.receive_available()
        try:
            frame = channel.next_frame()
        except ProtocolError as exc:
            self._refuse(channel, f'bad request: {exc}')
            return
        if frame is None:
            if channel.eof:
                self._drop_channel(channel)  # gave up before asking
            return
        self._awaiting_request.discard(channel.fileno())
        frame_obj, fds = frame
        try:
            request = _Request.parse(frame_obj, fds)
        except ValueError as exc:
            close_fds(fds)
            self._refuse(channel, f'bad request: {exc}')
            return
        try:
            pid, report_fd = self._from_pool(request) or _fork_child(request)
        except Exception as exc:
            self._refuse(channel, f'fork failed: {exc!r}')
            return
        finally:
            os.close(request.child.ipc_fd)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            # Cannot happen for an unreaped child of ours; never leave one
            # unwatched if it does.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(report_fd)
            self._refuse(channel, f'pidfd_open failed: {exc!r}')
            return
        self._children[pidfd] = _Child(pid, pidfd, report_fd, channel)
        self._poller.register(pidfd, select.POLLIN)
        channel.queue({'pid': pid}, (pidfd,))
        self._flush(channel)

    def _from_pool(self, request: _Request) -> tuple[int, int] | None:
        """Hand ``request`` to a pool member, ready or still warming:
        ``(pid, report_fd)``, or None (no pool for it, or no member: fork cold)."""
        spec = request.child
        if spec.host != 'subint' or request.warm_pool == 0:
            return None
        now = time.monotonic()
        demand = self._pools.get(spec.entry)
        if demand is None:
            warm_up = WarmUp(
                (spec.entry.partition(':')[0],), tuple(spec.sys_path or sys.path), idle=can_hurry(),
            )
            sizing = Sizing(
                request.warm_pool, created=now, cap=pool_cap(), idle_timeout=pool_idle_timeout(),
            )
            demand = self._pools[spec.entry] = PoolDemand(
                WarmPool(warm_up, sizing.target), sizing, cpus=os.process_cpu_count() or 1, now=now,
            )
        else:
            demand.set_size(request.warm_pool, now)
        pool = demand.pool
        member = pool.claim()
        demand.spawned(member, now=now)
        if member is None:
            return None
        self._unwatch_member(member.control.fileno())
        # Our stdio, environment and cwd are what a cold child would inherit.
        pool.hand_out(member, spec, stdio=request.stdio, cwd=os.getcwd(), environ=dict(os.environ))
        self._channels[member.control.fileno()] = member.control
        self._close_when_flushed.add(member.control.fileno())
        self._flush(member.control)
        return member.pid, member.report_fd

    def _refill_pools(self) -> None:
        """Shrink or close idle pools; fork one member where one is missing
        and its time has come (``PoolDemand``: never while a burst boots)."""
        now = time.monotonic()
        for entry, demand in list(self._pools.items()):
            target = demand.tick(now)
            if target == 0:
                del self._pools[entry]  # idle for too long: the next request starts afresh
                self._unwatch_pool(demand.pool, keep=())
                demand.pool.drain()
                continue
            if target is not None:
                demand.pool.trim()
                self._unwatch_pool(demand.pool, keep=demand.pool.watched_fds())
            if demand.refill_after <= now and demand.pool.missing():
                for fd in demand.pool.refill(limit=1):
                    self._pool_fds[fd] = demand.pool
                    self._poller.register(fd, select.POLLIN | select.POLLRDHUP)
                demand.forked_one(time.monotonic())

    def _timeout_ms(self) -> int | None:
        """How long the poll may wait: until the next pool's deadline."""
        if not self._pools:
            return None
        now = time.monotonic()
        deadline = min(demand.next_deadline(now) for demand in self._pools.values())
        return poll_timeout_ms(deadline, now)

    def _unwatch_pool(self, pool: WarmPool, keep: Iterable[int]) -> None:
        """Stop watching ``pool``'s members other than ``keep``."""
        kept = set(keep)
        for fd in [fd for fd, owner in self._pool_fds.items() if owner is pool and fd not in kept]:
            self._unwatch_member(fd)

    def _unwatch_member(self, fd: int) -> None:
        del self._pool_fds[fd]
        try:
            self._poller.unregister(fd)
        except KeyError:
            pass

    def _refuse(self, channel: WireChannel, message: str) -> None:
        self._awaiting_request.discard(channel.fileno())
        channel.queue({'error': message})
        self._close_when_flushed.add(channel.fileno())
        self._flush(channel)

    def _flush(self, channel: WireChannel) -> None:
        fd = channel.fileno()
        try:
            done = channel.flush_nowait()
        except OSError:
            self._drop_channel(channel)  # the requester is gone
            return
        if done and fd in self._close_when_flushed:
            self._drop_channel(channel)
        elif not done:
            self._poller.register(fd, select.POLLOUT)  # (re-)registers
        else:
            # A child's connection is idle until its exit is reported.
            try:
                self._poller.unregister(fd)
            except KeyError:
                pass

    def _drop_channel(self, channel: WireChannel) -> None:
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
        exception = read_report(child.report_fd)
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
        # requesters fall back (see _client.ForkserverChild).
        for child in list(self._children.values()):
            self._reap(child)
        for channel in list(self._channels.values()):
            channel.close()
        for demand in self._pools.values():
            demand.pool.drain()


def serve(listen_fd: int, lifeline_fd: int) -> None:
    """Run the server on an already listening socket until ``lifeline_fd``
    hits EOF. Must run on the main thread of a process that never creates
    subinterpreters (it would lose the ability to fork)."""
    # Ctrl-C in a terminal reaches the whole process group: the owner decides
    # when we stop (the lifeline), and the children get Ctrl-C themselves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The owner execs us with SIGINT blocked (a Ctrl-C during our start-up
    # must not kill us half-initialised); ignored now, a pending one is
    # discarded as it is unblocked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # An inherited SIG_IGN would make the kernel reap children behind our back.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.set_blocking(lifeline_fd, False)
    listener = socket.socket(fileno=listen_fd)
    _Server(listener, lifeline_fd).serve()


def _restore_environment() -> None:
    saved = os.environ.pop(SAVED_PYTHONPATH, None)
    if saved is None:
        return
    original = json.loads(saved)
    if original is None:
        os.environ.pop('PYTHONPATH', None)
    else:
        os.environ['PYTHONPATH'] = original


def main(argv: list[str]) -> int:
    """``python -m tractor_subint.spawn.forkserver LISTEN_FD LIFELINE_FD``"""
    if len(argv) != 2:
        print(f'usage: python -m {SERVER_MODULE} LISTEN_FD LIFELINE_FD', file=sys.stderr)
        return 2
    name_this_process('ts:forkserver')
    _restore_environment()
    serve(int(argv[0]), int(argv[1]))
    return 0
