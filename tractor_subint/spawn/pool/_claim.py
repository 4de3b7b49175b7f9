"""The trio side of this process's warm pools: start them, claim a member.

A process that can fork keeps one pool per entry, driven by a
:class:`~._owner.PoolKeeper` thread. The pool belongs to the process, not to
a nursery or a tree: it outlives them, so that a program that opens a
nursery per use, or a fresh root per request, still finds members warm. It
ends when it has been idle for its timeout (``_sizing``), when the process
exits (``atexit``), when the actor of a child process ends, or on
:func:`close_local_pools`; whatever way, its idle members are killed and
reaped.

A nursery of a pooled backend starts (or resizes) its pool when it opens
(:func:`warm_up`); a spawn takes a member (:func:`claim_member`) and hands
it its spec, or finds none and forks cold.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from dataclasses import replace

import trio

from .._contract import ChildSpec, SpawnRequest
from .._fork import can_fork_here
from .._forked_process import ForkedProcess
from .._prelude import resolve_stdio_policy
from .._priority import can_hurry
from .._process_handle import ProcessHandle
from .._wire import WireChannel
from ._interpreters import close_interpreter_pools, local_interpreter_pools
from ._member import WarmUp
from ._owner import Member, PoolKeeper, WarmPool
from ._sizing import Sizing, explicit_size, pool_cap, pool_idle_timeout

_keepers: dict[str, PoolKeeper] = {}
"""This process's pools, by entry."""
_keepers_lock = threading.Lock()


def local_warm_pool(entry: str) -> WarmPool | None:
    """This process's warm pool for children running ``entry``, if one is
    open (for checks and benchmarks)."""
    keeper = _keepers.get(entry)
    return None if keeper is None or keeper.closed else keeper.pool


def _keeper(entry: str, size: int | None) -> PoolKeeper:
    """This process's keeper for ``entry`` (started on first use, or again
    after it closed), sized ``size`` (None: adaptive)."""
    with _keepers_lock:
        keeper = _keepers.get(entry)
        if keeper is not None and keeper.closed:
            keeper.close()  # idle for too long: already drained, its thread gone
            keeper = None
        if keeper is None:
            warm_up = WarmUp(
                preload=(entry.partition(':')[0],), sys_path=tuple(sys.path),
                idle=_WARM_IDLE,
            )
            sizing = Sizing(
                size, created=time.monotonic(), cap=pool_cap(), idle_timeout=pool_idle_timeout(),
            )
            keeper = _keepers[entry] = PoolKeeper(WarmPool(warm_up, sizing.target), sizing)
            return keeper
    keeper.set_size(size)  # the latest request's size is the target
    return keeper


_WARM_IDLE = can_hurry()
"""Members warm under ``SCHED_IDLE`` where a claimed one can be hurried
(``spawn._priority``)."""


async def warm_up(entry: str, warm_pool: int | None, *, awaken: bool = False) -> None:
    """Start (or resize) this process's warm pool for ``entry``, so that the
    coming spawns find members warming or ready: a nursery of a pooled
    backend awaits it when it opens. Returns once the pool's members are
    forked (on a worker thread: milliseconds), not warm; at once when the
    pool is full, or adaptive and still dormant (``_sizing``: it warms from
    the process's second spawn on) unless ``awaken`` wakes it now (for
    benchmarks that measure a full pool). A no-op where the pool is off, or
    this process cannot fork (its spawns go through the forkserver, whose
    pool fills on use)."""
    size = explicit_size(warm_pool)
    if size == 0 or not can_fork_here():
        return
    keeper = _keeper(entry, size)
    if awaken:
        keeper.awaken()
    pool = keeper.pool
    if len(pool.member_pids()) < pool.size:
        await trio.to_thread.run_sync(pool.refill)


async def claim_member(request: SpawnRequest, spec: ChildSpec) -> ProcessHandle | None:
    """Make a member of this process's pool for ``spec.entry`` into
    ``spec``'s child, ready or about to be; None if the pool is off or has
    no member (the caller forks cold; the pool grows if it adapts)."""
    size = explicit_size(request.warm_pool)
    if size == 0:
        return None
    keeper = _keeper(spec.entry, size)
    keeper.claiming()
    taken: Member | None = None
    stdio = resolve_stdio_policy(request.stdio)
    inherit = stdio.mode == 'inherit'
    # What the spawner is now, not what it was when the member was forked.
    spec = replace(spec, sys_path=list(sys.path))
    try:
        while (member := keeper.pool.claim()) is not None:
            taken = member
            handle = ForkedProcess(member.pid, report_fd=member.report_fd)
            try:
                keeper.pool.hand_out(
                    member, spec,
                    stdio=stdio.path if stdio.mode == 'file' and stdio.path else stdio.mode,
                    stdio_fds=(0, 1, 2) if inherit else (),
                    cwd=os.getcwd(), environ=dict(os.environ),
                )
                await _flush(member.control)
            except BaseException as exc:
                # Died before it could be used (never handed out), or this
                # spawn was cancelled: either way the member is ours to end.
                member.control.close()
                with trio.CancelScope(shield=True):
                    handle.kill()
                    await handle.wait()
                if isinstance(exc, OSError):
                    taken = None
                    continue
                raise
            member.control.close()
            return handle
        return None  # the caller forks one cold
    finally:
        keeper.spawned(taken)  # refill behind us, once the boots leave a core


async def _flush(control: WireChannel) -> None:
    while not control.flush_nowait():
        await trio.lowlevel.wait_writable(control.fileno())


def close_local_pools() -> None:
    """Drain and stop every pool of this process (blocking: idle members are
    killed and reaped, idle interpreters destroyed). Idempotent; the next
    :func:`warm_up` starts afresh. Runs at interpreter exit."""
    close_interpreter_pools()
    with _keepers_lock:
        keepers = list(_keepers.values())
        _keepers.clear()
    errors = []
    for keeper in keepers:
        try:
            keeper.close()
        except RuntimeError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


async def aclose_local_pools() -> None:
    """:func:`close_local_pools` on a worker thread (none needed when this
    process has no pool), shielded from cancellation."""
    if _keepers or local_interpreter_pools():
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(close_local_pools)


def _forget_pools_after_fork() -> None:
    # A forked child has none of our keeper threads, and the members are not
    # its children: it starts with no pool (nor closes ours).
    global _keepers_lock
    _keepers.clear()
    _keepers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)
atexit.register(close_local_pools)
