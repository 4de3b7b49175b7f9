"""Many spawn/RPC/cancel cycles in one long-lived nursery leave the parent
flat: no fd, thread or memory growth, and no finished child kept alive
(issue 9 item 6). Marked ``soak``: run with ``--run-soak``."""
from __future__ import annotations

import gc
import os

import actor_targets
import pytest

import tractor_subint as ts
from tractor_subint.runtime._child import ChildActor
from tractor_subint.testing import trio_parent_test

WARM_UP = 20
"""Cycles before the baseline: caches fill (trio's thread cache, the warm
pool, imported modules) and stay at their size."""
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


def _measure() -> dict[str, int]:
    gc.collect()
    return {
        'fds': len(os.listdir('/proc/self/fd')),
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
        before = _measure()
        for index in range(CYCLES):
            await _cycle(an, index)
        after = _measure()
        still_listed = len(an.children)
    growth = {key: after[key] - before[key] for key in before}
    print(f'\nsoak ({start_method}, {CYCLES} cycles): before {before}, growth {growth}')
    assert growth['fds'] <= MAX_FD_GROWTH, growth
    assert growth['threads'] <= MAX_THREAD_GROWTH, growth
    assert growth['rss'] <= MAX_RSS_GROWTH, growth
    # Finished children are let go: at most the last one is still on its way out.
    assert after['child_actors'] <= 1, after
    assert still_listed <= 1
