"""Cancelling actors: nurseries of sleepers, daemons, non-checkpointing actors.

Cancelling an actor nursery through an enclosing trio scope is tested in
``test_scripts.py``, in a root process of its own, because a hang there would
be shielded from this test's own ``fail_after``.
"""
from __future__ import annotations

import actor_targets
import pytest
import trio
from _rt_helpers import not_reaped

import tractor_subint as ts
from tractor_subint.runtime import CANCEL_ACK_TIMEOUT, TERMINATE_TIMEOUT
from tractor_subint.testing import trio_parent_test

# Slack on top of a documented bound, for reaping and a loaded CI machine.
SLACK = 1.0


async def _spawn_sleepers(an: ts.ActorNursery, fifo, n: int = 3) -> list[ts.Portal]:
    portals = [
        await an.run_in_actor(actor_targets.sleep_forever_reporting, name=f'sleeper{i}', fifo=fifo.path)
        for i in range(n)
    ]
    daemon = await an.start_actor('daemon', enable_modules=['actor_targets'])
    portals.append(daemon)
    for _ in range(n):
        assert (await fifo.receive_line()).startswith('sleeping ')
    assert await daemon.run(actor_targets.add, a=1, b=1) == 2
    return portals


@trio_parent_test(timeout=30)
async def test_nursery_cancel_stops_sleeping_actors(start_method, fifo):
    async with ts.open_nursery() as an:
        portals = await _spawn_sleepers(an, fifo)
        started = trio.current_time()
        await an.cancel()
        elapsed = trio.current_time() - started
        # cancel() returns once every child is gone, still inside the block.
        assert not_reaped([p.pid for p in portals]) == []
    # Sleeping in trio, they acknowledge at once: no terminate/kill needed.
    assert elapsed < CANCEL_ACK_TIMEOUT + SLACK, f'an.cancel() took {elapsed:.2f}s'


@trio_parent_test(timeout=20)
async def test_daemon_cancel_actor(start_method):
    with trio.fail_after(15):  # nursery exit must not hang after the cancel
        async with ts.open_nursery() as an:
            portal = await an.start_actor('daemon', enable_modules=['actor_targets'])
            assert await portal.run(actor_targets.add, a=20, b=22) == 42
            assert await portal.cancel_actor() is True
            assert not_reaped([portal.pid]) == []
            # Idempotent: a second cancel of a gone actor returns at once.
            with trio.fail_after(1):
                assert await portal.cancel_actor() is True


@pytest.mark.needs_own_process(reason='no signal ends a thread; in-process: test_subint_backend')
@trio_parent_test(timeout=20)
async def test_non_checkpointing_actor_is_hard_killed(start_method, fifo):
    bound = CANCEL_ACK_TIMEOUT + TERMINATE_TIMEOUT
    call_errors: list[BaseException] = []

    async def blocked_call(portal: ts.Portal) -> None:
        try:
            await portal.run(actor_targets.blocking_sleep, seconds=60, fifo=fifo.path)
        except ts.ActorFailure as exc:  # the actor went away under the call
            call_errors.append(exc)

    async with ts.open_nursery() as an:
        portal = await an.start_actor('blocker', enable_modules=['actor_targets'])
        async with trio.open_nursery() as tn:
            tn.start_soon(blocked_call, portal)
            line = await fifo.receive_line()
            assert line == f'blocking {portal.pid}'
            started = trio.current_time()
            acked = await portal.cancel_actor()
            elapsed = trio.current_time() - started
            assert acked is False  # it could not answer: its trio thread is blocked
            assert not_reaped([portal.pid]) == []
    assert elapsed < bound + SLACK, (
        f'cancel_actor() took {elapsed:.2f}s; bound {bound}s + reaping'
    )
    assert elapsed >= CANCEL_ACK_TIMEOUT, 'it cannot have been a graceful cancel'
    assert len(call_errors) == 1, call_errors
