"""Contexts and two-way streams (issue 18, item 1): ``@context``,
``Portal.open_context``, ``ctx.started``, ``ctx.open_stream``, results,
errors and cancellation in both directions, flow control."""
from __future__ import annotations

import api_targets
import pytest
import trio
import trio.testing
from api_targets import QuotaExceeded

import tractor_subint as ts
from tractor_subint.runtime._streaming import DEFAULT_STREAM_BUFFER
from tractor_subint.testing import trio_parent_test

MODULES = ['api_targets']


@trio_parent_test(timeout=20)
async def test_a_two_way_stream_echoes_and_the_block_waits_for_the_result(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('echo', enable_modules=MODULES)
        async with (
            portal.open_context(api_targets.echo_server, first=10) as (ctx, first),
            ctx.open_stream() as stream,
        ):
            assert first == 11
            assert ctx.side == 'parent'
            for i in range(100):
                await stream.send({'i': i, 'text': 'x' * i})
                assert await stream.receive() == {'i': i, 'text': 'x' * i}
            # async for too, for a few
            await stream.send('a')
            async for item in stream:
                assert item == 'a'
                break
        assert await ctx.wait_for_result() == 'echoed 101'
        assert await ctx.result() == 'echoed 101'
        # The actor is fine, and serves another context.
        async with (
            portal.open_context(api_targets.echo_server, first=0) as (ctx2, first),
            ctx2.open_stream(),
        ):
            assert first == 1
        assert await ctx2.wait_for_result() == 'echoed 0'
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_the_callee_s_error_ends_the_caller_s_block_and_is_raised(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('failer', enable_modules=MODULES)
        reached_end_of_block = False
        with pytest.raises(ts.RemoteActorError) as info:
            async with portal.open_context(api_targets.raise_after_started, user='carol') as (ctx, first):
                assert first == 'about to fail'
                await trio.sleep_forever()  # the remote error cancels this
            reached_end_of_block = True
        assert not reached_end_of_block
        assert info.value.boxed_type is QuotaExceeded
        assert ctx.maybe_error is info.value
        with pytest.raises(QuotaExceeded):
            info.value.raise_boxed()

        # Before started(): raised by the entry itself.
        with pytest.raises(ts.RemoteActorError) as info:
            async with portal.open_context(api_targets.raise_before_started):
                pytest.fail('entered a context whose function failed before started()')
        assert info.value.type_name == 'api_targets.QuotaExceeded'

        # A function that returns without started() is an error, said so.
        with pytest.raises(ts.RemoteActorError, match=r'returned before it called ctx\.started'):
            async with portal.open_context(api_targets.never_started):
                pass
        assert await portal.run(api_targets.tracked_states, key='x') == {}
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_an_error_in_a_stream_reaches_the_other_side(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('streamer', enable_modules=MODULES)
        with pytest.raises(ts.RemoteActorError) as info:
            async with (
                portal.open_context(api_targets.fail_on_item, bad=3) as (ctx, _),
                ctx.open_stream() as stream,
            ):
                for i in range(5):
                    await stream.send(i)
                    if i < 3:
                        assert await stream.receive() == i
                await stream.receive()  # raises the callee's error
        assert info.value.boxed_type is QuotaExceeded
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_an_error_in_the_caller_s_block_cancels_the_callee(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('sleepy', enable_modules=MODULES)
        with pytest.raises(ValueError, match='caller failed'):
            async with portal.open_context(api_targets.sleeper, key='k1') as (ctx, first):
                assert first == 'sleeping'
                raise ValueError('caller failed')
        assert ctx.cancel_called
        # In the actor: the task was cancelled, not left running.
        states = await portal.run(api_targets.wait_tracked, key='k1', state='cancelled', count=1)
        assert states == {0: 'cancelled'}

        # Cancelled from outside (a timeout) likewise.
        with trio.move_on_after(0.2) as scope:
            async with portal.open_context(api_targets.sleeper, key='k2'):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        states = await portal.run(api_targets.wait_tracked, key='k2', state='cancelled', count=1)
        assert states == {0: 'cancelled'}
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_a_context_cancelled_by_its_caller_is_not_a_failure(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('sleepy', enable_modules=MODULES)
        async with portal.open_context(api_targets.sleeper, key='k') as (ctx, _):
            await ctx.cancel()
            assert ctx.cancel_called
        # The block ended quietly; the acknowledgement is the result.
        outcome = await ctx.wait_for_result()
        assert isinstance(outcome, ts.ContextCancelled)
        assert outcome.canceller == ts.current_actor().uid
        assert ctx.canceller == ts.current_actor().uid
        assert ctx.cancelled_caught
        states = await portal.run(api_targets.wait_tracked, key='k', state='cancelled', count=1)
        assert states == {0: 'cancelled'}
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=20)
async def test_a_context_cancelled_by_the_callee_raises_context_cancelled(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('quitter', enable_modules=MODULES)
        with pytest.raises(ts.ContextCancelled) as info:
            async with portal.open_context(api_targets.self_cancelling) as (ctx, _):
                await trio.sleep_forever()
        assert info.value.canceller == portal.uid
        assert isinstance(info.value, ts.RemoteActorError)
        assert not ctx.cancel_called
        assert await portal.cancel_actor() is True


@trio_parent_test(timeout=30)
async def test_flow_control_both_ways(start_method):
    window = DEFAULT_STREAM_BUFFER
    async with ts.open_nursery() as an:
        portal = await an.start_actor('flow', enable_modules=MODULES)
        # Callee -> caller: many windows' worth, read slowly, all in order.
        n = window * 10
        async with (
            portal.open_context(api_targets.producer, n=n) as (ctx, first),
            ctx.open_stream() as stream,
        ):
            assert first == n
            received = []
            async for item in stream:
                received.append(item)
                if item % window == 0:
                    await trio.sleep(0)
        assert received == list(range(n))
        assert await ctx.wait_for_result() == n

        # Caller -> callee that reads nothing yet: the caller may send one
        # window, and then waits.
        async with (
            portal.open_context(api_targets.consumer, key='gate') as (ctx, _),
            ctx.open_stream() as stream,
        ):
            sent = 0

            async def send_all() -> None:
                nonlocal sent
                for i in range(window * 3):
                    await stream.send(i)
                    sent += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_all)
                # Everything here waits: the sender for credit, the channel
                # for the callee, which reads nothing.
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                assert sent == window
                await portal.run(api_targets.release_tracked, key='gate')
            assert sent == window * 3
        assert await ctx.wait_for_result() == list(range(window * 3))
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_either_side_closing_the_stream_ends_the_other_s(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('flow', enable_modules=MODULES)
        async with portal.open_context(api_targets.producer, n=3) as (ctx, _):
            async with ctx.open_stream() as stream:
                assert [x async for x in stream] == [0, 1, 2]
                with pytest.raises(trio.EndOfChannel):
                    await stream.receive()
                with pytest.raises(trio.EndOfChannel):
                    await stream.send('too late')
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive()
            with pytest.raises(RuntimeError, match='already opened'):
                async with ctx.open_stream():
                    pass
        assert await ctx.wait_for_result() == 3
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_a_stream_fans_out_to_subscribers(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('flow', enable_modules=MODULES)
        got: dict[int, list[int]] = {}
        async with (
            portal.open_context(api_targets.ticker, n=20) as (ctx, _),
            ctx.open_stream() as stream,
        ):
            async def consume(i: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                async with stream.subscribe() as receiver:
                    task_status.started()
                    got[i] = [x async for x in receiver]

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    await nursery.start(consume, i)
                await stream.send('go')  # every subscriber is attached
        assert got == {i: list(range(20)) for i in range(3)}
        await portal.cancel_actor()


@trio_parent_test(timeout=30)
async def test_contexts_nest_across_three_actors(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('middle', enable_modules=MODULES)
        async with (
            portal.open_context(api_targets.nested_context, n=5) as (ctx, first),
            ctx.open_stream() as stream,
        ):
            assert first == 5
            assert [x async for x in stream] == [0, 10, 20, 30, 40]
        assert await ctx.wait_for_result() == 5
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_cancelling_the_actor_under_an_open_context_does_not_hang(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('sleepy', enable_modules=MODULES)
        async with portal.open_context(api_targets.sleeper, key='k') as (ctx, _):
            assert await portal.cancel_actor() is True
        # The callee said who stopped it: us, so it is no error here.
        outcome = await ctx.wait_for_result()
        assert isinstance(outcome, (ts.ContextCancelled, type(None))) or outcome is None


@trio_parent_test(timeout=20)
async def test_open_context_refuses_a_plain_function(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('x', enable_modules=MODULES)
        with pytest.raises(TypeError, match='not a @context function'):
            async with portal.open_context(api_targets.tracked_states, key='k'):
                pass
        await portal.cancel_actor()


def test_context_needs_a_ctx_parameter():
    async def no_ctx(x: int) -> None:
        pass

    with pytest.raises(TypeError, match='parameter named ctx'):
        ts.context(no_ctx)
    with pytest.raises(TypeError, match='async function'):
        ts.context(lambda ctx: None)
