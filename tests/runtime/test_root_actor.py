"""The implicit root actor: created by the first nursery, ended by the last."""
from __future__ import annotations

import actor_targets
import pytest
import trio

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=30)
async def test_root_actor_outlives_a_sibling_nursery():
    """Two nurseries open side by side in the root: the one that exits first
    must not end the root actor (or its forkserver) under the other."""
    first_done = trio.Event()
    results = []

    async def long_lived():
        async with ts.open_nursery() as an:
            root = ts.current_actor()
            await first_done.wait()
            assert ts.current_actor() is root
            portal = await an.start_actor('late', enable_modules=['actor_targets'])
            results.append(await portal.run(actor_targets.add, a=2, b=3))
            await portal.cancel_actor()

    async with trio.open_nursery() as tasks:
        tasks.start_soon(long_lived)
        async with ts.open_nursery() as an:
            portal = await an.start_actor('early', enable_modules=['actor_targets'])
            results.append(await portal.run(actor_targets.add, a=1, b=1))
            await portal.cancel_actor()
        first_done.set()
    assert results == [2, 5]
    with pytest.raises(RuntimeError, match='no actor runtime'):
        ts.current_actor()
