"""Many spawn/RPC/cancel cycles in one long-lived nursery leave the parent
flat: no fd, thread or memory growth, and no finished child kept alive
(issue 9 item 6). Marked ``soak``: run with ``--run-soak``."""
from __future__ import annotations

import gc
import os
import sys

import actor_targets
import pytest
import trio
from _rt_helpers import runs_in_this_process

import tractor_subint as ts
from tractor_subint.runtime._boot import ENTRY
from tractor_subint.runtime._child import ChildActor
from tractor_subint.spawn import local_warm_pool
from tractor_subint.spawn.backends.subint import subint_mode
from tractor_subint.spawn.pool._interpreters import local_interpreter_pool, reuse_enabled
from tractor_subint.spawn.pool._sizing import DEFAULT_SIZE, explicit_size
from tractor_subint.testing import trio_parent_test

WARM_UP = 20
"""Cycles before the baseline: caches fill (trio's thread cache, the warm
pool, imported modules) and stay at their size."""
WARM_UP_AT_ONCE = 4
"""In-process backends: actors alive at once in the warm-up (more than the
warm pool holds)."""
CYCLES = 200
MAX_FD_GROWTH = 5
MAX_THREAD_GROWTH = 2
MAX_RSS_GROWTH = 10 * 1024 * 1024


def _status(field: str) -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(f'{field}:'):
                return int(line.split()[1])
    raise LookupError(field)


def _cpython_kept_per_interpreter(kind: str) -> float:
    """RSS bytes CPython itself keeps per subinterpreter of ``kind`` that
    imported trio and was destroyed, measured here (3.13: isolated ~9 MiB,
    its own-obmalloc arenas are not given back, legacy ~0.65 MiB; 3.14:
    ~0). ``ai/conc-anal/isolated_subint_memory_not_returned_on_3_13.md``."""
    import _interpreters

    def one() -> None:
        interp = _interpreters.create(_interpreters.new_config(kind))
        try:
            assert _interpreters.exec(interp, 'import trio') is None
        finally:
            _interpreters.destroy(interp)

    for _ in range(3):
        one()
    before = _status('VmRSS') * 1024
    for _ in range(10):
        one()
    return max(0.0, (_status('VmRSS') * 1024 - before) / 10)


async def _settle_fork_pool() -> None:
    """Until this process's fork pool (``subint_forkserver``), if it has one,
    is full and every member ready: no refill forking or warming while the
    soak reads the process."""
    pool = local_warm_pool(ENTRY)
    if pool is not None:
        assert await trio.to_thread.run_sync(pool.wait_ready, None, 60)


def _fds_but_the_pool() -> tuple[int, int]:
    """This process's open fds, those the fork pool holds for its members
    aside: an adaptive pool's size follows the spawn rate (its members,
    two fds each, are its own, bounded by its cap and closed with it), so
    they are no growth of the parent's. Read again until the pool's fds are
    the same on both sides of the listing; return both counts.
    """
    while True:
        pool = local_warm_pool(ENTRY)
        held = set() if pool is None else pool.held_fds()
        fds = {int(fd) for fd in os.listdir('/proc/self/fd')}
        if pool is None or pool.held_fds() == held:
            return len(fds - held), len(held)


def _measure() -> dict[str, int]:
    gc.collect()
    fds, pool_fds = _fds_but_the_pool()
    return {
        'fds': fds,
        'pool_fds': pool_fds,  # reported, not bounded: the pool's size follows demand
        'threads': _status('Threads'),
        'rss': _status('VmRSS') * 1024,
        'child_actors': sum(isinstance(obj, ChildActor) for obj in gc.get_objects()),
    }


async def _cycle(an: ts.ActorNursery, index: int) -> None:
    portal = await an.start_actor(f'soak-{index}', enable_modules=['actor_targets'])
    assert await portal.run(actor_targets.add, a=index, b=1) == index + 1
    assert await portal.cancel_actor() is True


@pytest.mark.soak
@trio_parent_test(timeout=600)
async def test_200_cycles_in_one_nursery_leave_the_parent_flat(start_method):
    async with ts.open_nursery() as an:
        for index in range(WARM_UP):
            await _cycle(an, index)
        if runs_in_this_process(start_method):
            # Several interpreters of the warm pool host an actor before the
            # baseline: sequential actors mostly reuse one, but a spawn that
            # comes before the last actor's interpreter is back takes another,
            # and an interpreter's first actor grows the process by a few MiB
            # for good (arenas, lazy imports; 3.14: 6-19 MB over 200 cycles
            # after 20 sequential warm-ups). The pool hands out used ones
            # first; the ones it warms after this burst stay unused, and it
            # is left to finish warming them (imports grow the process too).
            async with trio.open_nursery() as tn:
                for index in range(WARM_UP_AT_ONCE):
                    tn.start_soon(_cycle, an, WARM_UP + index)
            pool = local_interpreter_pool(subint_mode(), ENTRY)
            assert pool is not None
            assert await trio.to_thread.run_sync(pool.wait_ready, None, 60)
        await _settle_fork_pool()
        before = _measure()
        for index in range(CYCLES):
            await _cycle(an, index)
        await _settle_fork_pool()
        after = _measure()
        still_listed = len(an.children)
        fork_pool = local_warm_pool(ENTRY)
        fork_pool_size = None if fork_pool is None else fork_pool.size
    growth = {key: after[key] - before[key] for key in before}
    print(f'\nsoak ({start_method}, {CYCLES} cycles): before {before}, growth {growth}')
    assert growth['fds'] <= MAX_FD_GROWTH, growth
    assert growth['threads'] <= MAX_THREAD_GROWTH, growth
    rss_bound = MAX_RSS_GROWTH
    if runs_in_this_process(start_method) and not reuse_enabled():
        # Each actor was a subinterpreter of this process, destroyed when it
        # ended (reuse is off; with it on, actors one after another reuse the
        # warm pool's interpreters, made before the baseline, and the parent
        # stays flat like any other): what CPython keeps of one (~0 on 3.14)
        # is allowed, twice over: the actor imports more
        # than trio, and a legacy one allocates from the main interpreter's
        # arenas, whose reuse varies run to run (3.13: 41 MB and 214 MB for
        # the same 200 legacy actors).
        kind = subint_mode()
        cpython = _cpython_kept_per_interpreter(kind)
        rss_bound += int(CYCLES * cpython * 2)
        print(f'CPython keeps {cpython / 2**20:.2f} MiB per {kind} subinterpreter here '
              f'(Python {sys.version.split()[0]}): RSS bound {rss_bound / 2**20:.0f} MiB')
    assert growth['rss'] <= rss_bound, growth
    if fork_pool_size is not None and explicit_size(None) is None:
        # Actors one after another never grow an adaptive pool (it used to
        # count them as a burst: 7-8 members, ~20 MiB each). One more is
        # allowed: a spawn that claims a member still warming while a cold
        # child boots counts both as booting, by estimate, for a moment.
        assert fork_pool_size <= DEFAULT_SIZE + 1, fork_pool_size
    # Finished children are let go: at most the last one is still on its way out.
    assert after['child_actors'] <= 1, after
    assert still_listed <= 1
