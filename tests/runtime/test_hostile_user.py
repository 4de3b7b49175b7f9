"""The runtime tried as a careless or hostile user would (issue 9): every
fault gives a clear error where the call was made, loses nothing, hangs
nothing and leaves no process behind; the actor survives whatever it can."""
from __future__ import annotations

import actor_targets
import hostile_targets
import pytest
import trio
from _rt_helpers import not_reaped

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test

MODULES = ['actor_targets', 'hostile_targets']


# -- 1. errors that are hard to send back ---------------------------------------

@pytest.mark.parametrize(
    ('target', 'kwargs', 'type_name', 'text'),
    [
        (hostile_targets.raise_unprintable, {}, 'UnprintableError', '__str__ raised ValueError'),
        (hostile_targets.raise_huge, {'megabytes': 40}, 'ValueError', 'more characters cut'),
        (hostile_targets.raise_lone_surrogate, {}, 'ValueError', 'bad text: \\udc80 here'),
    ],
    ids=['str-raises', '40-MB-message', 'lone-surrogate'],
)
@trio_parent_test(timeout=30)
async def test_an_error_that_is_hard_to_send_arrives_boxed(start_method, target, kwargs, type_name, text):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(target, **kwargs)
        assert info.value.type_name == type_name
        assert text in str(info.value)
        assert len(str(info.value)) < 200_000  # bounded, whatever the error's size
        # The actor survived: the next call on the same portal works.
        assert await portal.run(actor_targets.add, a=2, b=3) == 5
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


# -- 2. values the codec cannot encode -----------------------------------------

@trio_parent_test(timeout=20)
async def test_unencodable_arguments_fail_in_the_caller_before_sending(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        with pytest.raises(TypeError, match='msgpack'):
            await portal.run(actor_targets.echo, value=object())
        with pytest.raises(TypeError, match='msgpack'):
            async with portal.open_stream_from(actor_targets.count_to, n=object()):
                pass
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_an_unencodable_result_or_item_is_a_remote_error_naming_its_type(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(hostile_targets.return_unencodable)
        assert info.value.type_name == 'TypeError'
        assert "type object" in info.value.remote_message

        received = []
        with pytest.raises(ts.RemoteActorError) as info:
            async with portal.open_stream_from(hostile_targets.yield_then_unencodable) as stream:
                async for item in stream:
                    received.append(item)
        assert received == [1]
        assert "type object" in info.value.remote_message

        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()
    assert not_reaped([portal.pid]) == []


# -- 3. a child that closes its own channel --------------------------------------

@trio_parent_test(timeout=20)
async def test_a_child_that_closes_its_channel_fails_the_pending_call_with_its_exit(start_method):
    with pytest.raises(ts.ActorFailure) as info:
        async with ts.open_nursery() as an:
            portal = await an.start_actor('hostile', enable_modules=MODULES)
            with trio.fail_after(5):  # "promptly": the child's exit ends the call
                with pytest.raises(ts.ActorFailure) as pending:
                    await portal.run(hostile_targets.close_parent_socket)
            assert 'went away while a call was pending' in str(pending.value)
            assert pending.value.exit_status is not None
            assert pending.value.returncode not in (None, 0)
            assert 'lost its channel to the parent' in (pending.value.traceback or '')
    # The nursery also reports the exit nobody asked for.
    assert 'exited unexpectedly' in str(info.value)
    assert not_reaped([portal.pid]) == []
