"""Nested trees: root -> child -> grandchild."""
from __future__ import annotations

import actor_targets
import pytest
import trio
from _rt_helpers import wait_pids_gone

import tractor_subint as ts
from tractor_subint.runtime import CANCEL_ACK_TIMEOUT, TERMINATE_TIMEOUT
from tractor_subint.testing import trio_parent_test

SLACK = 1.0


@trio_parent_test(timeout=30)
async def test_error_at_the_leaf_of_a_depth_3_tree(start_method):
    with pytest.raises(ts.RemoteActorError) as info:
        async with ts.open_nursery() as an:
            portal = await an.run_in_actor(actor_targets.nested_error, name='depth1', depth=1)
    err = info.value
    text = str(err)
    assert err.src_type_name == 'actor_targets.LeafError', text
    assert tuple(err.actor_uid) == portal.uid  # boxed by the child ...
    assert tuple(err.src_uid) != portal.uid  # ... raised in the grandchild
    assert err.src_uid[0] == 'depth0'
    # The leaf's own traceback travels up inside the child's.
    assert 'LeafError: leaf depth0 failed on purpose' in text
    assert "raise LeafError(f'leaf" in text
    assert 'actor_targets.py' in text


@trio_parent_test(timeout=30)
async def test_error_at_the_leaf_through_portal_run(start_method):
    async with ts.open_nursery() as an:
        child = await an.start_actor('child', enable_modules=['actor_targets'])
        with pytest.raises(ts.RemoteActorError) as info:
            await child.run(actor_targets.nested_error, depth=1)
        # The child survives the failed call; its subtree is gone.
        assert await child.run(actor_targets.add, a=2, b=2) == 4
        await child.cancel_actor()
    err = info.value
    assert err.src_type_name == 'actor_targets.LeafError', str(err)
    assert 'LeafError: leaf depth0 failed on purpose' in str(err)


@pytest.mark.needs_own_process(reason='the blocked grandchild is SIGKILLed; in-process: test_subint_backend')
@trio_parent_test(timeout=30)
async def test_cancel_tree_while_grandchild_blocks(start_method, fifo):
    """The grandchild sits in a blocking ``time.sleep``: cancelling the root's
    nursery must take the whole tree down, the grandchild by the kill ladder
    run in the child."""
    call_errors: list[BaseException] = []

    async def hold(child: ts.Portal) -> None:
        try:
            await child.run(actor_targets.run_blocking_grandchild, seconds=60, fifo=fifo.path)
        except ts.ActorFailure as exc:
            call_errors.append(exc)

    async with ts.open_nursery() as an:
        child = await an.start_actor('child', enable_modules=['actor_targets'])
        async with trio.open_nursery() as tn:
            tn.start_soon(hold, child)
            grandchild = await child.run(actor_targets.wait_published, key='grandchild_pid')
            assert await fifo.receive_line() == f'blocking {grandchild}'
            started = trio.current_time()
            await an.cancel()
            elapsed = trio.current_time() - started
    survivors = await wait_pids_gone([child.pid, grandchild], timeout=0)
    # Child: acknowledges at once, then climbs the ladder for its grandchild.
    bound = CANCEL_ACK_TIMEOUT + TERMINATE_TIMEOUT + SLACK
    assert elapsed < bound, f'cancelling the tree took {elapsed:.2f}s (bound {bound}s)'
    assert survivors == [], f'still alive after the cancel: {survivors}'
    assert len(call_errors) == 1, call_errors
