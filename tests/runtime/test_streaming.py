"""Streaming from an async generator in an actor."""
from __future__ import annotations

import actor_targets
import pytest
import trio

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=20)
async def test_full_stream(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=['actor_targets'])
        async with portal.open_stream_from(actor_targets.count_to, n=50) as stream:
            received = [x async for x in stream]
        assert received == list(range(50))
        # A second stream on the same actor works too, and so does RPC.
        async with portal.open_stream_from(actor_targets.count_to, n=3) as stream:
            assert [x async for x in stream] == [0, 1, 2]
        assert await portal.run(actor_targets.add, a=1, b=2) == 3
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_breaking_out_of_a_stream_cancels_the_remote_generator(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=['actor_targets'])
        received = []
        async with portal.open_stream_from(actor_targets.count_forever, key='s1') as stream:
            async for x in stream:
                received.append(x)
                if len(received) == 5:
                    break
        assert received == [0, 1, 2, 3, 4]
        # The generator, in the actor, saw the cancellation; a later RPC to
        # the same actor reports how it ended.
        with trio.fail_after(5):
            outcome = await portal.run(actor_targets.wait_published, key='s1')
        assert outcome in ('GeneratorExit', 'Cancelled'), outcome
        # The actor itself is fine.
        assert await portal.run(actor_targets.add, a=3, b=4) == 7
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_stream_from_a_non_generator_is_an_error(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=['actor_targets'])
        # Refused here, before anything is sent (issue 17).
        with pytest.raises(TypeError, match='not an async generator function'):
            async with portal.open_stream_from(actor_targets.echo, value=1) as stream:
                async for _ in stream:
                    pass
        await portal.cancel_actor()
