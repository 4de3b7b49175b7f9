"""The warm pool's parts on their own: the sizing rule (a pure function of
events and times) and a member's priority while it warms."""
from __future__ import annotations

import os
import select
import shutil
import socket
import sys
import time

import pytest

from tractor_subint.spawn._contract import ChildSpec
from tractor_subint.spawn._priority import BOOT_NICE, can_hurry
from tractor_subint.spawn.pool import DEFAULT_SIZE, PoolKeeper, Sizing, WarmPool
from tractor_subint.spawn.pool._member import READY, WarmUp, parse_boot_cpu, ready_message
from tractor_subint.spawn.pool._owner import REFILL_DELAY, PoolDemand
from tractor_subint.spawn.pool._sizing import BOOT_CPU, HANDOUT_CPU, BootLoad

# -- sizing ---------------------------------------------------------------------------


def test_an_explicit_size_is_kept_whatever_the_demand():
    sizing = Sizing(3, created=0.0, cap=8)
    for i in range(10):
        assert sizing.wanted(i + 1, 0.01 * i) == 3
    assert sizing.tick(30.0) is None  # no shrinking either


def test_an_explicit_size_warms_from_the_start():
    sizing = Sizing(2, created=0.0, cap=8)
    assert sizing.target == 2 and not sizing.dormant  # before any spawn asks
    assert sizing.wanted(1, 0.0) == 2


def test_an_adaptive_pool_is_dormant_through_the_first_spawn_and_wakes_at_the_second():
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    assert sizing.target == 0 and sizing.dormant  # open, warming nothing
    assert sizing.wanted(1, 0.0) == 0  # a one-actor program never pays for a pool
    assert sizing.dormant
    assert sizing.tick(30.0) is None  # dormant is not closed: only idleness closes it
    assert sizing.wanted(1, 40.0) == 2  # the second spawn, however much later
    assert not sizing.dormant


def test_a_pool_woken_by_a_bigger_demand_takes_that_demand():
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    assert sizing.wanted(1, 0.0) == 0
    assert sizing.wanted(1, 5.0) == 2  # actors one after another: the start size
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    assert sizing.wanted(1, 0.0) == 0
    assert sizing.wanted(5, 0.1) == 5  # woken by a bigger demand: that demand


def test_a_dormant_pool_stays_dormant_when_a_nursery_asks_for_no_size():
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    sizing.set_fixed(None, 1.0)  # another nursery without warm_pool opens
    assert sizing.target == 0 and sizing.dormant
    sizing.set_fixed(3, 2.0)  # one with warm_pool=3: warms at once
    assert sizing.target == 3 and not sizing.dormant


def test_awakening_a_dormant_pool_is_what_a_second_spawn_would_do():
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    assert sizing.awaken(1.0) == 2 and not sizing.dormant
    assert sizing.wanted(1, 1.5) == 2  # no burst yet: one spawn at once
    assert Sizing(4, created=0.0).awaken(1.0) == 4  # an explicit size is kept


def _burst(sizing: Sizing, boots: BootLoad, n: int, at: float, cpu: float = BOOT_CPU) -> list[int]:
    """``n`` spawns at once (each starts a boot of ``cpu`` seconds): the
    target after each."""
    targets = []
    for i in range(n):
        now = at + i / 1000
        boots.started(cpu, now)
        targets.append(sizing.wanted(boots.booting(now), now))
    return targets


def test_an_adaptive_pool_grows_to_a_burst_up_to_its_cap():
    sizing, boots = Sizing(None, created=0.0, cap=6, floor=2), BootLoad(2, 0.0)
    assert sizing.target == 0
    # Dormant through the burst's first spawn, then the start size, then the burst.
    assert _burst(sizing, boots, 8, 1.0) == [0, 2, 3, 4, 5, 6, 6, 6]


def test_spawns_one_after_another_never_grow_the_pool_however_fast():
    sizing, boots = Sizing(None, created=0.0, cap=8, floor=2), BootLoad(2, 0.0)
    # Each spawn comes once the one before has booted (a soak: spawn, use,
    # cancel, again), 50 of them in a second: no burst, whatever the rate.
    at = 0.0
    for _ in range(50):
        assert _burst(sizing, boots, 1, at, cpu=0.01)[0] <= 2
        at += 0.02
    # Cold spawns one after another: the same.
    for _ in range(10):
        assert _burst(sizing, boots, 1, at)[0] == 2
        at += BOOT_CPU + 0.01
    assert sizing.target == 2


# -- when a fork pool refills ------------------------------------------------------------


def test_boots_share_the_cores_and_one_alone_takes_one_core():
    boots = BootLoad(2, 0.0)
    boots.started(0.2, 0.0)
    assert boots.booting(0.1) == 1
    assert boots.spare_core_at(0.1) == 0.1  # one boot leaves the other core spare
    assert boots.booting(0.21) == 0
    for _ in range(4):
        boots.started(0.2, 1.0)
    # 4 boots on 2 cores: each at half speed, all done at 1.4 s; a core is
    # spare once fewer than 2 boot, which is then too.
    assert boots.spare_core_at(1.0) == pytest.approx(1.4)
    assert boots.booting(1.3) == 4
    assert boots.booting(1.41) == 0


def test_a_burst_of_cold_spawns_leaves_a_core_spare_only_once_it_has_booted():
    boots = BootLoad(2, 0.0)
    for _ in range(8):
        boots.started(0.2, 0.0)
    assert boots.spare_core_at(0.0) == pytest.approx(0.8)  # 8 x 0.2 CPU s on 2 cores
    boots.started(0.01, 0.5)  # a warm hand-out meanwhile: 9 boots share the cores
    assert boots.spare_core_at(0.5) == pytest.approx(0.805)  # its 0.01 s more, shared
    boots = BootLoad(2, 0.0)
    boots.started(0.3, 0.0)
    boots.started(0.1, 0.0)
    # Both at full speed (2 cores): the shorter ends at 0.1, leaving a core spare.
    assert boots.spare_core_at(0.0) == pytest.approx(0.1)
    assert BootLoad(1, 0.0).spare_core_at(3.0) == 3.0


class _Warming:
    """A member claimed while it warms, ``spent`` CPU seconds into it."""

    ready = False

    def __init__(self, spent: float) -> None:
        self.spent = spent

    def cpu_seconds(self) -> float:
        return self.spent


def test_a_spawn_counts_what_its_child_has_left_to_boot():
    pool = WarmPool(WarmUp(preload=(), sys_path=()), 0)
    pool.boot_cpu = 0.2
    demand = PoolDemand(pool, Sizing(None, created=0.0, cap=8), cpus=2, now=0.0)
    assert demand.boot_left(None) == 0.2  # a cold child: a whole boot
    assert demand.boot_left(_Warming(0.15)) == pytest.approx(0.05)  # the rest of its warm-up
    assert demand.boot_left(_Warming(0.5)) == HANDOUT_CPU  # (said slower than measured)
    ready = _Warming(0.2)
    ready.ready = True
    assert demand.boot_left(ready) == HANDOUT_CPU
    # Two cold spawns at once on 2 cores: a core is spare once one is booted,
    # and the refill comes REFILL_DELAY after that.
    demand.spawned(None, now=1.0)
    assert demand.refill_after == pytest.approx(1.0 + REFILL_DELAY)  # one alone: a core is spare
    demand.spawned(None, now=1.0)
    assert demand.refill_after == pytest.approx(1.2 + REFILL_DELAY)
    assert pool.size == DEFAULT_SIZE  # woken by the second spawn


def test_a_member_says_what_its_warm_up_cost():
    assert parse_boot_cpu(ready_message()) is not None
    assert parse_boot_cpu(READY + b'0.1875') == pytest.approx(0.1875)
    for message in (READY, READY + b'nan', READY + b'inf', READY + b'-1', READY + b'x'):
        assert parse_boot_cpu(message) is None


def test_an_idle_adaptive_pool_halves_down_to_its_floor_then_closes():
    sizing = Sizing(None, created=0.0, cap=8, floor=2, shrink_after=10, idle_timeout=60)
    _burst(sizing, BootLoad(2, 0.0), 8, 0.0)
    assert sizing.target == 8
    assert sizing.tick(5.0) is None
    assert sizing.next_deadline() == pytest.approx(10.007)
    assert sizing.tick(10.1) == 4
    assert sizing.tick(15.0) is None
    assert sizing.tick(20.2) == 2
    assert sizing.tick(40.0) is None  # at the floor: only the idle timeout is left
    assert sizing.next_deadline() == pytest.approx(60.007)
    assert sizing.tick(60.1) == 0


def test_a_spawn_restarts_the_idle_clock():
    sizing = Sizing(2, created=0.0, idle_timeout=60)
    assert sizing.tick(59.0) is None
    sizing.wanted(1, 59.0)
    assert sizing.tick(110.0) is None
    assert sizing.tick(119.5) == 0


def test_an_explicit_size_wins_over_adaptation_and_back():
    sizing = Sizing(None, created=0.0, cap=8, floor=2)
    sizing.wanted(1, 0.0)
    sizing.set_fixed(5, 0.5)
    assert sizing.wanted(1, 0.6) == 5 and sizing.target == 5
    sizing.set_fixed(None, 1.0)
    assert sizing.target == 5  # adapts on from where it is
    assert sizing.tick(11.1) == 2


# -- what the owner holds ---------------------------------------------------------------


def _open(fds: set[int]) -> set[int]:
    """Those of ``fds`` that are open (nothing else opens one meanwhile here)."""
    found = set()
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        found.add(fd)
    return found


def test_a_pool_holds_two_fds_per_member_until_it_drains():
    """What a process that counts its fds (a soak) sets aside as the pool's."""
    sleepers: list[int] = []
    sleep = shutil.which('sleep')
    assert sleep is not None

    def fork(target, **kwargs):  # a member that never warms: enough for the owner's books
        report_r, report_w = os.pipe()
        os.close(report_w)
        sleepers.append(os.posix_spawn(sleep, [sleep, '60'], os.environ))
        return sleepers[-1], report_r

    pool = WarmPool(WarmUp((), tuple(sys.path)), 3, fork=fork)
    try:
        pool.refill()
        held = pool.held_fds()
        assert len(held) == 6 and _open(held) == held
        assert set(pool.watched_fds()) < held  # the control sockets, and the report pipes beside them
        pool.size = 1
        pool.trim()
        assert len(pool.held_fds()) == 2
        assert not _open(held - pool.held_fds())  # the trimmed members' fds are closed
    finally:
        pool.drain()
    assert pool.held_fds() == set() and not _open(held)
    for pid in sleepers:  # killed and reaped by the pool
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


# -- priority -----------------------------------------------------------------------


def _threads_by_priority(pid: int) -> list[tuple[bool, int]]:
    """(under SCHED_IDLE, nice) of each thread of ``pid``."""
    found = []
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            found.append((
                os.sched_getscheduler(int(tid)) == os.SCHED_IDLE,
                os.getpriority(os.PRIO_PROCESS, int(tid)),
            ))
        except OSError:
            pass  # the thread just ended
    return sorted(found)


def _flush(channel) -> None:
    while not channel.flush_nowait():
        select.select([], [channel.fileno()], [], 5)


@pytest.mark.skipif(not can_hurry(), reason='this process may not hurry a SCHED_IDLE thread')
def test_a_member_warms_under_sched_idle_and_is_hurried_when_claimed_warming(tmp_path, monkeypatch):
    reached, gate = tmp_path / 'reached', tmp_path / 'gate'
    os.mkfifo(reached)
    os.mkfifo(gate)
    monkeypatch.setenv('TS_POOL_REACHED', str(reached))
    monkeypatch.setenv('TS_POOL_GATE', str(gate))
    pool = WarmPool(WarmUp(('_pool_gate',), tuple(sys.path), idle=True), 1)
    keeper = PoolKeeper(pool, Sizing(1, created=time.monotonic()))
    ours, theirs = socket.socketpair()
    try:
        with open(reached) as f:  # the member's warm-up opens it once it is importing
            assert f.read() == 'warming\n'
        (pid,) = pool.member_pids()
        # The warming thread, and only it, is idle; the main thread (which
        # will start the actor's) keeps the normal priority.
        assert _threads_by_priority(pid) == [(False, 0), (True, BOOT_NICE)]
        member = pool.claim()
        assert member is not None and member.pid == pid and not member.ready
        spec = ChildSpec('gated', '_pool_gate:entry', b'x', theirs.fileno(), 'subint', sys_path=sys.path)
        pool.hand_out(member, spec, stdio='inherit', cwd=os.getcwd(), environ=dict(os.environ))
        assert _threads_by_priority(pid) == [(False, 0), (False, BOOT_NICE)]  # hurried
        _flush(member.control)
        member.control.close()
        with open(gate, 'w'):
            pass  # let the warm-up finish
        ours.settimeout(20)
        assert ours.recv(64) == b'hosted:x'  # warm, then became the child it was handed
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        os.close(member.report_fd)
    finally:
        ours.close()
        theirs.close()
        keeper.close()
