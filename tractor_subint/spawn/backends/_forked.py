"""What both fork backends do: fork here when this process may, else ask the
spawn tree's forkserver to fork for it. A subinterpreter-hosted child comes
from a warm pool member when there is one (``spawn/pool``)."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import outcome
import trio

from .._child_host import run_forked_child
from .._contract import ChildSpec, HostKind, SpawnRequest
from .._docs import FORK_WITH_LIVE_SUBINT_DOC
from .._fork import FORKER, SubinterpretersAliveError, can_fork_here
from .._forked_process import ForkedProcess, fork_process
from .._process_handle import ProcessHandle
from .._tree import current_forkserver_address
from ..forkserver._client import spawn_via_forkserver
from ..pool._claim import claim_member
from ..pool._sizing import explicit_size


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
    warm_pool = explicit_size(request.warm_pool) if host == 'subint' else 0
    return await spawn_via_forkserver(forkserver, request, host=host, warm_pool=warm_pool)


async def _fork_here(request: SpawnRequest, host: HostKind, forkserver: str | None) -> ProcessHandle:
    spec = ChildSpec(
        request.name, request.entry, request.boot_payload, request.ipc_fd, host,
        tree=forkserver, env=dict(request.env),
    )
    if host == 'subint':
        pooled = await claim_member(request, spec)
        if pooled is not None:
            return pooled
    return await on_forker(partial(
        fork_process,
        partial(run_forked_child, spec),
        thread_name=f'tractor-subint-forker[{request.name}]',
        keep_fds=(request.ipc_fd,),
        stdio=request.stdio,
    ))


async def on_forker(fork: Callable[[], ForkedProcess]) -> ForkedProcess:
    """``fork()`` run on this process's forker thread (``_fork.FORKER``),
    awaited: no trio worker thread per spawn, whose start would make the
    event loop wait for the GIL while other threads fork. Like
    ``trio.to_thread.run_sync``, not cancellable once submitted: a fork
    that happens is returned, so that its child is never lost."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    result: list[outcome.Outcome[ForkedProcess]] = []

    def job() -> None:
        result.append(outcome.capture(fork))
        token.run_sync_soon(done.set)

    FORKER.submit(job)
    with trio.CancelScope(shield=True):
        await done.wait()
    return result[0].unwrap()
