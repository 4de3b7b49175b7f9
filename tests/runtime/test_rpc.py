"""RPC round trips and remote error boxing."""
from __future__ import annotations

import os

import actor_targets
import pytest
from _rt_helpers import not_reaped, runs_in_this_process

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=20)
async def test_rpc_round_trip(start_method):
    with pytest.raises(RuntimeError):
        ts.current_actor()  # outside the runtime

    async with ts.open_nursery() as an:
        assert an.start_method == start_method
        root = ts.current_actor()
        portal = await an.start_actor('calc', enable_modules=['actor_targets'])
        assert portal.name == 'calc'
        assert portal.uid[0] == 'calc'
        assert portal.spawn_time > 0

        assert await portal.run(actor_targets.add, a=2, b=40) == 42
        payload = {'list': [1, 2.5, 'x', None], 'nested': {'b': b'\x00\xff', 't': True}}
        assert await portal.run(actor_targets.echo, value=payload) == payload

        info = await portal.run(actor_targets.whoami)
        assert info['name'] == 'calc'
        assert tuple(info['uid']) == portal.uid
        assert tuple(info['uid']) != root.uid
        assert info['pid'] == portal.pid
        assert (info['pid'] == os.getpid()) == runs_in_this_process(start_method)

        assert await portal.cancel_actor() is True

    assert not_reaped([portal.pid]) == []
    with pytest.raises(RuntimeError):
        ts.current_actor()  # the root actor is gone with its nursery


@trio_parent_test(timeout=20)
async def test_run_in_actor_result(start_method):
    async with ts.open_nursery() as an:
        portal = await an.run_in_actor(actor_targets.add, name='adder', a=1, b=2)
        who = await an.run_in_actor(actor_targets.whoami)
    assert await portal.wait_for_result() == 3
    info = await who.wait_for_result()
    assert info['name'] == 'whoami'
    assert info['pid'] == who.pid
    assert (who.pid == os.getpid()) == runs_in_this_process(start_method)
    assert not_reaped([portal.pid, who.pid]) == []


@trio_parent_test(timeout=20)
async def test_remote_error_is_boxed(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('errors', enable_modules=['actor_targets'])
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(actor_targets.raise_boom, message='kaboom 1234')
        err = info.value
        assert err.type_name == 'actor_targets.BoomError'
        assert err.src_type_name == 'actor_targets.BoomError'
        assert tuple(err.src_uid) == portal.uid
        assert 'kaboom 1234' in err.remote_message
        # The remote traceback names the raising function and its module.
        assert 'raise_boom' in err.remote_traceback
        assert 'actor_targets.py' in err.remote_traceback
        text = str(err)
        assert 'BoomError' in text
        assert 'kaboom 1234' in text
        assert 'Traceback (most recent call last)' in text
        assert 'raise BoomError(message)' in text

        # The actor survives a failed call.
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_run_in_actor_error_is_raised_at_nursery_exit(start_method):
    with pytest.raises(ts.RemoteActorError) as info:
        async with ts.open_nursery() as an:
            portal = await an.run_in_actor(actor_targets.raise_boom_async, message='late')
    assert info.value.type_name == 'actor_targets.BoomError'
    assert 'late' in str(info.value)
    # The same error is available from the portal after the nursery exited.
    with pytest.raises(ts.RemoteActorError):
        await portal.wait_for_result()


@trio_parent_test(timeout=20)
async def test_plain_function_calls_keep_what_a_task_of_their_own_gave_them(start_method):
    """An actor answers a call of a plain (not async) function in its
    message loop, without a task of its own: still each call runs in its own
    copy of the context, an awaitable it returns is awaited, an async call
    waiting meanwhile is not held up, and every caller gets its own answer."""
    async with ts.open_nursery() as an:
        portal = await an.start_actor('plain', enable_modules=['actor_targets'])
        assert await portal.run(actor_targets.set_call_var, value='a') is None
        assert await portal.run(actor_targets.set_call_var, value='b') is None  # 'a' did not leak
        assert await portal.run(actor_targets.doubled_later, x=21) == 42
        waiting = await portal.submit(actor_targets.wait_for_flag, key='plain')
        await portal.run(actor_targets.raise_flag, key='plain')
        assert await waiting.result() == 'flag seen'
        pending = [await portal.submit(actor_targets.plus, a=i, b=1000) for i in range(200)]
        assert [await p.result() for p in pending] == [i + 1000 for i in range(200)]
        await portal.cancel_actor()
    assert not_reaped([portal.pid]) == []


class _UnhashableCallable:
    __eq__ = object.__eq__  # without __hash__: unhashable

    def __call__(self) -> int:
        return 1


def test_what_answers_inline_is_remembered_per_function_and_unhashable_targets_are_asked_afresh():
    """The actor's message loop answers a call itself only when its target
    returns its result directly; the answer is remembered per function (the
    loop asks for every call), and a target that cannot be remembered is
    still classified."""
    from tractor_subint.runtime import _targets

    async def coroutine_function() -> None: ...

    async def async_generator_function():  # type: ignore[no-untyped-def]
        yield

    def plain() -> None: ...

    _targets._returns_directly.cache_clear()
    targets = (plain, coroutine_function, async_generator_function)
    assert [_targets.returns_directly(fn) for fn in targets] == [True, False, False]
    assert _targets.returns_directly(plain) is True
    assert _targets._returns_directly.cache_info().hits == 1
    assert _targets.returns_directly(_UnhashableCallable()) is True
    _targets._forget_the_last_actor()
    assert _targets._returns_directly.cache_info().currsize == 0
