"""A caller cancelled while it waits on ``portal.run`` cancels the call in
the actor (issue 18, item 2): the remote task ends, the actor carries on."""
from __future__ import annotations

import api_targets
import trio

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test

CALLS = 100


@trio_parent_test(timeout=30)
async def test_cancelled_calls_cancel_their_remote_tasks(start_method):
    key = 'half'
    async with ts.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=['api_targets'])
        scopes: dict[int, trio.CancelScope] = {}
        results: dict[int, int] = {}

        async def call(index: int) -> None:
            with trio.CancelScope() as scopes[index]:
                results[index] = await portal.run(api_targets.tracked_call, key=key, index=index)

        async with trio.open_nursery() as callers:
            for index in range(CALLS):
                callers.start_soon(call, index)
            await portal.run(api_targets.wait_tracked, key=key, state='running', count=CALLS)

            cancelled = set(range(0, CALLS, 2))
            for index in cancelled:
                scopes[index].cancel()
            # Returns once every cancelled caller's remote task has ended as
            # cancelled; the test's bound fails it if one keeps running.
            states = await portal.run(
                api_targets.wait_tracked, key=key, state='cancelled', count=len(cancelled),
            )
            assert {i for i, s in states.items() if s == 'cancelled'} == cancelled
            assert {i for i, s in states.items() if s == 'running'} == set(range(CALLS)) - cancelled

            await portal.run(api_targets.release_tracked, key=key)

        # The others ran to their end and answered their callers.
        assert results == {i: i for i in range(CALLS) if i not in cancelled}
        states = await portal.run(api_targets.tracked_states, key=key)
        assert {i for i, s in states.items() if s == 'finished'} == set(range(CALLS)) - cancelled
        assert {i for i, s in states.items() if s == 'cancelled'} == cancelled
        # The actor is healthy.
        assert await portal.run(api_targets.tracked_states, key='other') == {}
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_a_timed_out_call_is_cancelled_in_the_actor(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('worker', enable_modules=['api_targets'])
        with trio.move_on_after(0.3) as scope:
            await portal.run(api_targets.tracked_call, key='slow', index=1)
        assert scope.cancelled_caught
        states = await portal.run(api_targets.wait_tracked, key='slow', state='cancelled', count=1)
        assert states == {1: 'cancelled'}
        await portal.cancel_actor()
