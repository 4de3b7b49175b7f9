"""What both fork backends do: fork here when this process may, else ask the
spawn tree's forkserver to fork for it; for subinterpreter-hosted children,
take a warm pool member first when there is one."""
from __future__ import annotations

import os
import sys
from functools import partial

import trio

from .._child_host import ChildSpec, HostKind, run_forked_child
from .._contract import SpawnRequest
from .._docs import FORK_WITH_LIVE_SUBINT_DOC
from .._fork import SubinterpretersAliveError, can_fork_here
from .._forked_process import ForkedProcess, fork_process
from .._pool import Member, PoolKeeper, WarmPool, pool_size
from .._pool_member import READY, WarmUp, handout_frame
from .._prelude import resolve_stdio_policy
from .._process_handle import ProcessHandle
from .._tree import current_forkserver_address, current_tree
from ..forkserver import spawn_via_forkserver


async def spawn_forked(request: SpawnRequest, host: HostKind) -> ProcessHandle:
    """Fork a child that hosts ``request``'s entry in ``host``: directly when
    this process can fork (from a fresh main-interpreter thread, or by
    taking a warm pool member), else through the current spawn tree's
    forkserver. The child joins that tree."""
    forkserver = current_forkserver_address()
    if can_fork_here():
        try:
            return await _fork_here(request, host, forkserver)
        except SubinterpretersAliveError:
            if forkserver is None:
                raise
            # Another thread created a subinterpreter since the check above
            # (an in-process actor booting): the forkserver forks instead.
    if forkserver is None:
        raise RuntimeError(
            f'cannot spawn {request.name!r}: this process holds a subinterpreter, so it '
            f'must not fork, and it belongs to no spawn tree with a forkserver to fork for '
            f'it (open one with tractor_subint.spawn.open_tree(); see {FORK_WITH_LIVE_SUBINT_DOC})'
        )
    return await spawn_via_forkserver(forkserver, request, host=host)


async def _fork_here(request: SpawnRequest, host: HostKind, forkserver: str | None) -> ProcessHandle:
    spec = ChildSpec(
        request.name, request.entry, request.boot_payload, request.ipc_fd, host,
        tree=forkserver, env=dict(request.env),
    )
    if host == 'subint' and pool_size(request.warm_pool):
        pooled = await _from_warm_pool(request, spec)
        if pooled is not None:
            return pooled
    return await trio.to_thread.run_sync(partial(
        fork_process,
        partial(run_forked_child, spec),
        thread_name=f'tractor-subint-forker[{request.name}]',
        keep_fds=(request.ipc_fd,),
        stdio=request.stdio,
    ))


def local_warm_pool(entry: str) -> WarmPool | None:
    """This process's warm pool for children running ``entry``, if it has
    started one (for checks and benchmarks)."""
    tree = current_tree()
    keeper = tree.resources_by_key().get(_pool_key(entry)) if tree is not None else None
    return keeper.pool if isinstance(keeper, PoolKeeper) else None


def _pool_key(entry: str) -> str:
    return f'warm-pool:{entry}'


async def warm_up(entry: str, warm_pool: int | None) -> None:
    """Start (or resize) this process's warm pool for ``entry``, so that the
    coming spawns find members warming or ready: a nursery of a pooled
    backend awaits it when it opens. Returns once the pool's members are
    forked (on a worker thread: milliseconds), not warm. A no-op where the
    pool is off, or this process cannot fork (its spawns go through the
    forkserver, whose pool fills on use)."""
    size = pool_size(warm_pool)
    keeper = _keeper(entry, size) if size and can_fork_here() else None
    if keeper is not None:
        await trio.to_thread.run_sync(keeper.pool.refill)


def _keeper(entry: str, size: int) -> PoolKeeper | None:
    tree = current_tree()
    if tree is None:
        return None  # a pool lives as long as a tree: none without one
    keeper = tree.resource(_pool_key(entry), lambda: PoolKeeper(WarmPool(
        WarmUp(preload=(entry.partition(':')[0],), sys_path=tuple(sys.path)), size,
    )))
    if keeper.pool.size != size:  # the latest request's size is the target
        keeper.pool.size = size
        keeper.wake()
    return keeper


async def _from_warm_pool(request: SpawnRequest, spec: ChildSpec) -> ProcessHandle | None:
    """Hand ``spec`` to a member of this process's pool, ready or about to
    be; None if the pool has none (or there is no tree to keep a pool in)."""
    keeper = _keeper(spec.entry, pool_size(request.warm_pool))
    if keeper is None:
        return None
    try:
        while (member := keeper.pool.claim()) is not None:
            handle = ForkedProcess(member.pid, report_fd=member.report_fd)
            try:
                if not member.ready:
                    await _until_ready(member)
                await _hand_out(member, spec, request)
            except BaseException as exc:
                # Died before it could be used (never handed out), or this
                # spawn was cancelled: either way the member is ours to end.
                member.control.close()
                with trio.CancelScope(shield=True):
                    handle.kill()
                    await handle.wait()
                if isinstance(exc, OSError):
                    continue
                raise
            return handle
        return None
    finally:
        keeper.taken()  # refill behind us, once this child has booted


async def _until_ready(member: Member) -> None:
    """Until a claimed member says READY; :class:`OSError` if it dies first."""
    sock = member.control.sock
    while True:
        await trio.lowlevel.wait_readable(sock.fileno())
        try:
            data = sock.recv(64)
        except BlockingIOError:
            continue
        if not data.startswith(READY):
            raise ConnectionResetError(f'warm pool member {member.pid} died while warming up')
        member.ready = True
        return


async def _hand_out(member: Member, spec: ChildSpec, request: SpawnRequest) -> None:
    """Send the member what makes it the child a cold fork would be now."""
    stdio = resolve_stdio_policy(request.stdio)
    fds = (spec.ipc_fd, 0, 1, 2) if stdio.mode == 'inherit' else (spec.ipc_fd,)
    frame = handout_frame(
        ChildSpec(
            spec.name, spec.entry, spec.payload, spec.ipc_fd, spec.host,
            tree=spec.tree, env=spec.env, sys_path=list(sys.path),
        ),
        stdio=stdio.path if stdio.mode == 'file' and stdio.path else stdio.mode,
        cwd=os.getcwd(),
        environ=dict(os.environ),
    )
    control = member.control
    try:
        control.queue(frame, fds)
        while not control.flush_nowait():
            await trio.lowlevel.wait_writable(control.fileno())
    finally:
        control.close()
