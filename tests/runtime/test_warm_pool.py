"""The warm pool of ``subint_forkserver``: members forked and warmed ahead
of time, handed out as the children a cold fork would have made; one pool
per process, beyond any nursery.

These tests pick the backend themselves; they run in the session whose
``--spawn-backend`` is ``subint_forkserver`` (where the whole behaviour suite
also runs with the pool on, its default).
"""
from __future__ import annotations

import _interpreters
import os
import select
import signal
import time
from types import SimpleNamespace

import actor_targets
import pytest
import trio
from _rt_helpers import not_reaped

import tractor_subint as ts
from tractor_subint.runtime._boot import ENTRY
from tractor_subint.spawn import close_local_pools, local_warm_pool
from tractor_subint.spawn.pool import _owner
from tractor_subint.spawn.pool._claim import _keeper
from tractor_subint.spawn.pool._owner import REFILL_DELAY
from tractor_subint.spawn.pool._sizing import DEFAULT_SIZE, ENV_VAR, IDLE_ENV_VAR
from tractor_subint.testing import descendants, trio_parent_test

pytestmark = pytest.mark.skipon_spawn_backend(
    'trio', 'main_thread_forkserver', reason='pool tests pick subint_forkserver themselves',
)
SFS = 'subint_forkserver'
MODULES = ['actor_targets']


async def _ready_pool(size: int):
    """The current tree's pool once ``size`` members are ready."""
    pool = local_warm_pool(ENTRY)
    assert pool is not None
    assert await trio.to_thread.run_sync(pool.wait_ready, size, 20)
    return pool


@trio_parent_test(timeout=60)
async def test_a_nursery_opens_with_its_pool_forked_and_warming():
    async with ts.open_nursery(start_method=SFS, warm_pool=2) as an:
        pool = local_warm_pool(ENTRY)
        assert pool is not None and pool.size == 2
        members = pool.member_pids()
        assert len(members) == 2  # forked before the body runs ...
        parents = {p.pid: p.ppid for p in descendants()}
        assert all(parents[pid] == os.getpid() for pid in members)  # ... by the root itself
        await _ready_pool(2)
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_a_spawn_takes_a_ready_member_and_the_pool_refills():
    async with ts.open_nursery(start_method=SFS, warm_pool=2) as an:
        pool = await _ready_pool(2)
        ready = set(pool.ready_pids())
        portal = await an.start_actor('pooled', enable_modules=MODULES)
        assert portal.pid in ready  # a hit: a member became the actor
        assert await portal.run(actor_targets.add, a=1, b=2) == 3
        assert portal.pid not in pool.member_pids()  # never handed out twice
        await _ready_pool(2)  # refilled in the background
        assert len(set(pool.member_pids()) - ready) == 1
        assert await portal.cancel_actor()
    assert portal.pid not in not_reaped([portal.pid]) and not not_reaped([portal.pid])


@trio_parent_test(timeout=60)
async def test_spawns_beyond_the_pool_fork_cold():
    async with ts.open_nursery(start_method=SFS, warm_pool=1) as an:
        pool = await _ready_pool(1)
        (member,) = pool.ready_pids()
        portals: list[ts.Portal] = []

        async def spawn(i: int) -> None:
            portals.append(await an.start_actor(f'w{i}', enable_modules=MODULES))

        async with trio.open_nursery() as tn:
            for i in range(3):
                tn.start_soon(spawn, i)
        pids = [p.pid for p in portals]
        assert pids.count(member) == 1, (member, pids)  # one hit, two cold forks
        for portal in portals:
            assert await portal.run(actor_targets.add, a=portal.pid, b=0) == portal.pid
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_a_member_that_dies_idle_is_replaced_never_handed_out():
    async with ts.open_nursery(start_method=SFS, warm_pool=2) as an:
        pool = await _ready_pool(2)
        victim = pool.ready_pids()[0]
        pidfd = os.pidfd_open(victim)  # before the keeper can reap it
        try:
            os.kill(victim, signal.SIGKILL)
            select.select([pidfd], [], [], 10)  # dead now (the keeper may not know yet)
        finally:
            os.close(pidfd)
        portals = [await an.start_actor(f'w{i}', enable_modules=MODULES) for i in range(2)]
        assert victim not in [p.pid for p in portals]
        for portal in portals:
            assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await _ready_pool(2)
        assert victim not in pool.member_pids()
        assert not_reaped([victim]) == []  # reaped by its owner, not left a zombie
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_the_pool_outlives_its_nursery_and_serves_the_next_one():
    # A nursery (and tree) per use: the second use still finds members warm.
    async with ts.open_nursery(start_method=SFS, warm_pool=2):
        members = set((await _ready_pool(2)).member_pids())
    assert set(local_warm_pool(ENTRY).member_pids()) == members  # still there, still idle
    async with ts.open_nursery(start_method=SFS, warm_pool=2) as an:
        portal = await an.start_actor('next', enable_modules=MODULES)
        assert portal.pid in members
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()


@trio_parent_test(timeout=60)
async def test_closing_the_pools_kills_and_reaps_every_member():
    async with ts.open_nursery(start_method=SFS, warm_pool=2):
        members = (await _ready_pool(2)).member_pids()
    await trio.to_thread.run_sync(close_local_pools)
    assert local_warm_pool(ENTRY) is None
    assert not_reaped(members) == []  # killed and reaped, nothing left behind
    async with ts.open_nursery(start_method=SFS, warm_pool=1):  # a fresh pool on the next use
        assert not set(local_warm_pool(ENTRY).member_pids()) & set(members)


@trio_parent_test(timeout=60)
async def test_an_idle_pool_closes_itself(monkeypatch):
    monkeypatch.setenv(IDLE_ENV_VAR, '0.5')
    async with ts.open_nursery(start_method=SFS, warm_pool=1):
        members = local_warm_pool(ENTRY).member_pids()  # forked as the nursery opened
    assert members
    with trio.fail_after(10):
        while local_warm_pool(ENTRY) is not None:  # the keeper's own deadline, not ours
            await trio.sleep(0.05)
    assert not_reaped(members) == []


@trio_parent_test(timeout=60)
async def test_an_adaptive_pool_warms_nothing_for_a_program_s_first_spawn(monkeypatch):
    # A one-actor program must not pay for members forked beside its one
    # spawn (and killed at its exit): the pool wakes at the second spawn.
    monkeypatch.delenv(ENV_VAR, raising=False)
    async with ts.open_nursery(start_method=SFS) as an:  # no size asked: the pool adapts
        pool = local_warm_pool(ENTRY)
        assert pool is not None and pool.size == 0 and pool.member_pids() == []
        first = await an.start_actor('first', enable_modules=MODULES)
        assert await first.run(actor_targets.add, a=1, b=2) == 3
        # Its keeper was told to refill behind the spawn: with a target of 0,
        # whenever it looks, it forks nothing.
        assert pool.size == 0 and pool.missing() == 0 and pool.member_pids() == []
        assert [p.pid for p in descendants()] == [first.pid]  # nothing forked beside it
        second = await an.start_actor('second', enable_modules=MODULES)
        assert second.pid != first.pid
        assert pool.size == DEFAULT_SIZE  # woken by the second spawn
        members = set((await _ready_pool(DEFAULT_SIZE)).member_pids())
        assert len(members) == DEFAULT_SIZE and not members & {first.pid, second.pid}
        assert await second.run(actor_targets.add, a=2, b=2) == 4
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_a_burst_grows_an_adaptive_pool_and_claims_members_still_warming(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    async with ts.open_nursery(start_method=SFS) as an:  # no size asked: the pool adapts
        pool = local_warm_pool(ENTRY)
        assert pool.size == 0  # dormant: a program's first spawn finds no member
        pool.boot_cpu = 1e-6  # these two count as booted at once, however fast they run
        for i in range(2):  # one after another: the second wakes the pool
            await (await an.start_actor(f'seq{i}', enable_modules=MODULES)).cancel_actor()
        assert pool.size == DEFAULT_SIZE
        assert pool.size == DEFAULT_SIZE  # one after another: no burst
        await trio.to_thread.run_sync(pool.refill)  # forked now, maybe not warm yet
        warming = set(pool.member_pids())
        assert len(warming) == DEFAULT_SIZE
        # Every boot counts as lasting a minute, so that all of the burst's
        # spawns are at once however slowly this machine runs them; a member
        # already warm when claimed too (its hand-out would count as 5 ms,
        # and whether it is warm by then is the machine's timing).
        pool.boot_cpu = 60.0
        monkeypatch.setattr(_owner, 'HANDOUT_CPU', 60.0)
        portals: list[ts.Portal] = []

        async def spawn(i: int) -> None:
            portals.append(await an.start_actor(f'b{i}', enable_modules=MODULES))

        async with trio.open_nursery() as tn:
            for i in range(DEFAULT_SIZE + 2):
                tn.start_soon(spawn, i)
        # Grown to the burst (the two spawns before it, booted, do not count).
        assert pool.size == DEFAULT_SIZE + 2
        assert warming <= {p.pid for p in portals}  # members were claimed, ready or not
        for portal in portals:
            assert await portal.run(actor_targets.add, a=portal.pid, b=0) == portal.pid
        # The keeper refills once the burst's boots would leave a core spare
        # (a minute from now, by this test's count): refill by hand instead.
        assert pool.member_pids() == []
        await trio.to_thread.run_sync(pool.refill)
        await _ready_pool(pool.size)  # to the new size
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_the_keeper_refills_only_once_a_burst_s_boots_leave_a_core_spare(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    keeper = _keeper(ENTRY, None)
    keeper.pool.boot_cpu = 60.0  # a cold child's boot, as if measured
    cpus = os.process_cpu_count() or 1
    for _ in range(cpus + 2):
        keeper.spawned(None)  # the spawns of a burst, each forking a cold child
    assert keeper.pool.size == min(cpus + 2, keeper._demand.sizing.cap)  # woken and grown
    # cpus + 2 boots of 60 s share the cores: all end together, (cpus + 2) * 60 / cpus
    # seconds from now, and only then is a core spare: no member is forked till then.
    assert keeper.refill_at - time.monotonic() > 60.0
    assert keeper.pool.member_pids() == []
    close_local_pools()
    keeper = _keeper(ENTRY, None)
    before = time.monotonic()
    keeper.claiming()  # a spawn is about to claim: the keeper holds off meanwhile
    assert keeper.refill_at >= before + REFILL_DELAY
    keeper.spawned(None)  # a program's first spawn (cold): dormant
    keeper.spawned(SimpleNamespace(ready=True))  # the second, a ready member: milliseconds
    assert keeper.pool.size == DEFAULT_SIZE
    assert keeper.refill_at - time.monotonic() < 1.0
    await _ready_pool(DEFAULT_SIZE)  # refilled behind them
    close_local_pools()


@trio_parent_test(timeout=60)
async def test_size_zero_turns_the_pool_off(monkeypatch):
    monkeypatch.setenv(ENV_VAR, '0')
    async with ts.open_nursery(start_method=SFS) as an:
        assert local_warm_pool(ENTRY) is None
        portal = await an.start_actor('cold', enable_modules=MODULES)
        assert await portal.run(actor_targets.add, a=2, b=2) == 4
        assert [p.pid for p in descendants()] == [portal.pid]
        await portal.cancel_actor()


@trio_parent_test(timeout=60)
async def test_the_environment_variable_sizes_the_pool(monkeypatch):
    monkeypatch.setenv(ENV_VAR, '3')
    async with ts.open_nursery(start_method=SFS) as an:
        assert len(local_warm_pool(ENTRY).member_pids()) == 3
        await an.cancel()
    monkeypatch.setenv(ENV_VAR, 'many')
    with pytest.raises(ValueError, match=r'\$TRACTOR_SUBINT_WARM_POOL must be a whole number'):
        async with ts.open_nursery(start_method=SFS):
            pass
    with pytest.raises(ValueError, match='>= 0'):
        async with ts.open_nursery(start_method=SFS, warm_pool=-1):
            pass


@trio_parent_test(timeout=60)
async def test_a_pooled_child_is_what_a_cold_fork_would_be_now(monkeypatch, tmp_path):
    """Everything that changed in the parent since the member was forked
    reaches it: environment, working directory, sys.path, stdio policy."""
    var = 'TRACTOR_SUBINT_POOL_TEST_VAR'
    out = tmp_path / 'pooled.out'
    async with ts.open_nursery(start_method=SFS, warm_pool=1) as an:
        pool = await _ready_pool(1)
        (member,) = pool.ready_pids()
        monkeypatch.setenv(var, 'set after the fork')
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setenv('TRACTOR_SUBINT_CHILD_STDIO', str(out))
        portal = await an.start_actor('pooled', enable_modules=MODULES)
        assert portal.pid == member
        seen = await portal.run(actor_targets.surroundings, env_var=var, say='to the file')
        await portal.cancel_actor()
    assert seen['env'] == 'set after the fork'
    assert seen['cwd'] == str(tmp_path)
    assert seen['sys_path_head'] == str(tmp_path)
    assert seen['ppid'] == os.getpid()
    assert out.read_text() == 'to the file\n'


@trio_parent_test(timeout=60)
async def test_a_pooled_child_s_exit_status_and_signals_are_a_cold_one_s():
    with pytest.raises((ts.ActorFailure, BaseExceptionGroup)) as info:
        async with ts.open_nursery(start_method=SFS, warm_pool=1) as an:
            (member,) = (await _ready_pool(1)).ready_pids()
            portal = await an.start_actor('pooled', enable_modules=MODULES)
            assert portal.pid == member
            os.kill(portal.pid, signal.SIGTERM)  # forwarded into its subinterpreter
            await portal.run(actor_targets.sleep_forever)
    # The pending call and the nursery both report it (which first is timing).
    error = info.value
    failures = list(error.exceptions) if isinstance(error, BaseExceptionGroup) else [error]
    assert failures and all(isinstance(f, ts.ActorFailure) for f in failures), failures
    assert {f.exit_status.returncode for f in failures} == {128 + signal.SIGTERM}


@trio_parent_test(timeout=60)
async def test_the_pool_waits_out_a_subinterpreter_of_its_process_then_refills():
    # An in-process subint actor makes the root unable to fork for a while:
    # the keeper must retry, not die (before: the pool stayed empty for good).
    async with ts.open_nursery(start_method=SFS, warm_pool=1) as an:
        pool = await _ready_pool(1)
        interp = _interpreters.create()
        try:
            _keeper(ENTRY, 2)  # one more member, asked for while this process cannot fork
            assert await trio.to_thread.run_sync(pool.refill_blocked.wait, 20)
            assert len(pool.member_pids()) == 1
        finally:
            _interpreters.destroy(interp)
        await _ready_pool(2)  # refilled once the process can fork again
        assert not pool.refill_blocked.is_set()
        portal = await an.start_actor('pooled', enable_modules=MODULES)
        assert await portal.run(actor_targets.add, a=1, b=2) == 3
        await an.cancel()


@trio_parent_test(timeout=60)
async def test_the_keeper_survives_a_refusal_whose_subinterpreter_is_already_gone(monkeypatch):
    # The bad interleaving, forced: a fork is refused because a subinterpreter
    # lives, and it is destroyed before the keeper looks again. The keeper
    # used to ask can_fork_here() then, get yes, and die with the refusal.
    from tractor_subint.spawn._fork import SubinterpretersAliveError
    from tractor_subint.spawn.pool import WarmPool

    real_fork_member = WarmPool._fork_member
    refusals = []

    def refuse_once(self):
        if not refusals:
            refusals.append(1)
            raise SubinterpretersAliveError('a subinterpreter lived at the fork (injected)')
        return real_fork_member(self)

    monkeypatch.setattr(WarmPool, '_fork_member', refuse_once)
    assert _interpreters.list_all() == [_interpreters.get_main()]  # none is alive now
    async with ts.open_nursery(start_method=SFS, warm_pool=1) as an:
        pool = await _ready_pool(1)  # refilled after the refusal
        assert refusals == [1]
        assert not pool.refill_blocked.is_set()
        portal = await an.start_actor('pooled', enable_modules=MODULES)
        assert await portal.run(actor_targets.add, a=2, b=2) == 4
        await an.cancel()
