"""Errors in ``run_in_actor`` children: one cancels all, many are grouped."""
from __future__ import annotations

import actor_targets
import pytest
import trio
from _rt_helpers import not_reaped

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=30)
async def test_error_in_one_run_in_actor_cancels_siblings(start_method, fifo):
    sleepers: list[ts.Portal] = []
    with pytest.raises(ts.RemoteActorError) as info:
        async with ts.open_nursery() as an:
            for i in range(3):
                sleepers.append(await an.run_in_actor(
                    actor_targets.sleep_forever_reporting, name=f'sleeper{i}', fifo=fifo.path,
                ))
            for _ in sleepers:  # every sibling is really asleep before the error
                assert (await fifo.receive_line()).startswith('sleeping ')
            failed_at = trio.current_time()
            await an.run_in_actor(actor_targets.raise_boom_async, name='failer', message='one cancels all')
    elapsed = trio.current_time() - failed_at

    err = info.value
    assert err.type_name == 'actor_targets.BoomError'
    assert 'one cancels all' in str(err)
    # The siblings were cancelled (gracefully: they sleep in trio), so the
    # whole thing ends within one spawn plus one cancel round, not a timeout.
    assert elapsed < 5.0, f'one-cancels-all took {elapsed:.2f}s'
    assert not_reaped([p.pid for p in sleepers]) == []


N_FAILERS = 25


@trio_parent_test(timeout=60)
async def test_many_actors_failing_at_once_raise_a_group(start_method, gate, fifo):
    """25 actors fail at once: every error reaches the root, as a group.

    "At once" is made exact: the actors wait on one gate, and after opening
    it the root keeps its own loop blocked until every actor has said it is
    raising, so no error can be pre-empted by the cancel the first one
    triggers (one-cancels-all).
    """
    portals: list[ts.Portal] = []
    raising: list[str] = []
    with pytest.raises(BaseExceptionGroup) as info:
        async with ts.open_nursery() as an:
            for i in range(N_FAILERS):
                portals.append(await an.run_in_actor(
                    actor_targets.raise_boom_after_gate,
                    name=f'failer{i}', gate=gate.path, report=fifo.path, index=i,
                ))
            gate.release()
            raising = fifo.receive_lines_blocking(N_FAILERS, timeout=15)

    assert sorted(raising) == sorted(f'raising {i}' for i in range(N_FAILERS)), raising
    errors = info.value.exceptions
    summary = [f'{type(e).__name__}: {str(e).splitlines()[0]}' for e in errors]
    assert len(errors) == N_FAILERS, summary
    assert all(isinstance(e, ts.RemoteActorError) for e in errors), summary
    assert {e.type_name for e in errors} == {'actor_targets.BoomError'}
    messages = {str(e).splitlines()[0] for e in errors}
    assert messages == {f'actor_targets.BoomError: boom from actor {i}' for i in range(N_FAILERS)}
    assert not_reaped([p.pid for p in portals]) == []
