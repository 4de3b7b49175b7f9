"""The spawn tree: its forkserver costs nothing until a process that cannot
fork needs a child, and everything of it ends with the tree."""
from __future__ import annotations

import os

import actor_targets
import pytest
import trio
from _rt_helpers import wait_pids_gone

import tractor_subint as ts
from tractor_subint.spawn import current_tree, get_backend
from tractor_subint.testing import descendants, trio_parent_test


@trio_parent_test(timeout=30)
async def test_a_flat_tree_has_one_process_per_actor(start_method):
    # No warm pool: its idle members would be processes too (test_warm_pool).
    async with ts.open_nursery(warm_pool=0) as an:
        portals = [await an.start_actor(f'w{i}', enable_modules=['actor_targets']) for i in range(2)]
        for portal in portals:
            assert await portal.run(actor_targets.add, a=1, b=1) == 2
        tree = current_tree()
        assert tree is not None and tree.owns_forkserver
        address = tree.forkserver_address
        assert address is not None and os.path.exists(address)  # bound, usable ...
        assert tree.forkserver_pid is None  # ... but no process was started
        own = [] if get_backend(start_method).in_process else [p.pid for p in portals]
        assert sorted(p.pid for p in descendants()) == sorted(own)
        await an.cancel()
    assert current_tree() is None  # the root's tree ended with its last nursery
    assert not os.path.exists(address)


@trio_parent_test(timeout=60)
async def test_a_nested_spawn_starts_the_forkserver_only_where_needed(start_method):
    """A child that holds a subinterpreter cannot fork: its children come
    from the tree's forkserver, started by that first request. A child that
    can fork spawns by itself."""
    backend = get_backend(start_method)
    needs_forkserver = backend.hosts_subinterpreter and backend.forks
    ended: list[BaseException] = []

    async def hold(child: ts.Portal) -> None:
        try:
            await child.run(actor_targets.hold_grandchild)
        except ts.ActorFailure as exc:  # cancelled below, with the call pending
            ended.append(exc)

    async with ts.open_nursery() as an:
        child = await an.start_actor('child', enable_modules=['actor_targets'])
        async with trio.open_nursery() as tn:
            tn.start_soon(hold, child)
            grandchild = await child.run(actor_targets.wait_published, key='grandchild_pid')
            tree = current_tree()
            assert tree is not None
            forkserver = tree.forkserver_pid
            assert (forkserver is not None) == needs_forkserver, (start_method, forkserver)
            if backend.in_process:  # all three actors in this process
                assert grandchild == child.pid == os.getpid()
            else:
                parents = {p.pid: p.ppid for p in descendants()}
                assert parents[grandchild] == (forkserver if needs_forkserver else child.pid)
            await an.cancel()
    # Closed with the tree: no forkserver, no grandchild left.
    pids = [child.pid, grandchild] + ([forkserver] if forkserver is not None else [])
    assert await wait_pids_gone(pids, timeout=0) == []
    assert current_tree() is None
    assert len(ended) == 1


@pytest.mark.skipon_spawn_backend('trio', 'subint', reason='nothing forks in this process')
@trio_parent_test(timeout=60)
async def test_a_fork_refused_after_the_check_goes_through_the_forkserver(start_method, monkeypatch):
    """A process that could fork when it looked, and could not when it
    forked (another thread created a subinterpreter in between, e.g. an
    in-process actor booting): the tree's forkserver forks instead of the
    spawn failing. The refusal is injected at the local fork."""
    from tractor_subint.spawn import SubinterpretersAliveError
    from tractor_subint.spawn.backends import _forked

    async def refused(*args: object) -> None:
        raise SubinterpretersAliveError('a subinterpreter appeared (injected)')

    monkeypatch.setattr(_forked, '_fork_here', refused)
    async with ts.open_nursery(warm_pool=0) as an:
        portal = await an.start_actor('late', enable_modules=['actor_targets'])
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        tree = current_tree()
        assert tree is not None and tree.forkserver_pid is not None
        assert {p.pid: p.ppid for p in descendants()}[portal.pid] == tree.forkserver_pid
        await an.cancel()
