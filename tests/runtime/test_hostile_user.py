"""The runtime tried as a careless or hostile user would (issue 9): every
fault gives a clear error where the call was made, loses nothing, hangs
nothing and leaves no process behind; the actor survives whatever it can."""
from __future__ import annotations

import os
import signal
import sys

import actor_targets
import hostile_targets
import pytest
import trio
from _rt_helpers import ScriptProcess, not_reaped, runs_in_this_process, script_env

import tractor_subint as ts
from tractor_subint.spawn import get_backend
from tractor_subint.testing import trio_parent_test

MODULES = ['actor_targets', 'hostile_targets']


# -- 1. errors that are hard to send back ---------------------------------------

@pytest.mark.parametrize(
    ('target', 'kwargs', 'type_name', 'text'),
    [
        (
            hostile_targets.raise_unprintable, {}, 'hostile_targets.UnprintableError',
            '__str__ raised ValueError',
        ),
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
    codec = get_backend(start_method).codec
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        with pytest.raises(TypeError, match=f'{codec} codec: .*object'):
            await portal.run(actor_targets.echo, value=object())
        with pytest.raises(TypeError, match=f'{codec} codec: .*object'):
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
        assert 'Opaque' in info.value.remote_message

        received = []
        with pytest.raises(ts.RemoteActorError) as info:
            async with portal.open_stream_from(hostile_targets.yield_then_unencodable) as stream:
                async for item in stream:
                    received.append(item)
        assert received == [1]
        assert 'Opaque' in info.value.remote_message

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


# -- 7. a healthy actor prints nothing, even with warnings as errors -------------

@trio_parent_test(timeout=30)
async def test_healthy_actors_print_nothing_with_warnings_as_errors(start_method, tmp_path):
    children_output = tmp_path / 'children.out'
    env = script_env(
        start_method, PYTHONWARNINGS='error', TRACTOR_SUBINT_CHILD_STDIO=str(children_output)
    )
    async with ScriptProcess.running('main_target.py', env, tmp_path) as script:
        await script.read_until('DONE')
        await script.read_rest()
        rc = await script.proc.wait()
    assert rc == 0, script.describe()
    assert script.stderr() == ''  # in-process actors print here: no stdio of their own
    if not runs_in_this_process(start_method):
        assert children_output.read_text() == ''


# -- 8. __main__ targets further down the tree; a script without a guard ---------

@trio_parent_test(timeout=30)
async def test_a_main_defined_target_works_in_a_nested_actor(start_method, tmp_path):
    async with ScriptProcess.running('nested_main_target.py', script_env(start_method), tmp_path) as script:
        leaf = await script.read_json_after('LEAF')
        await script.read_until('DONE')
        rc = await script.proc.wait()
    assert rc == 0, script.describe()
    assert isinstance(leaf, dict)
    assert leaf['actor'] == 'leaf'
    assert leaf['module'] in ('__main__', '__mp_main__')


@trio_parent_test(timeout=30)
async def test_a_script_without_a_main_guard_is_told_what_to_do(start_method, tmp_path):
    async with ScriptProcess.running('unguarded_main.py', script_env(start_method), tmp_path) as script:
        out = await script.read_rest()
        rc = await script.proc.wait()
    if rc == 0:
        # A forked child already holds the script's module: nothing to import.
        assert out == ['DONE'], script.describe()
    else:
        lines = script.stderr().rstrip().splitlines()
        failure = next(line for line in lines if 'ActorFailure: ' in line)
        assert 'calls trio.run() when it is imported' in failure
        assert "if __name__ == '__main__':" in failure
        assert 'inside a run()' not in failure.split('UnguardedMainError', 1)[0]


# -- 9. enable_modules given a string; boot failures say why in one line ---------

@pytest.mark.parametrize('bad', ['actor_targets', ['actor_targets', 3], 42])
@trio_parent_test(timeout=20)
async def test_enable_modules_must_be_a_list_of_names(start_method, bad):
    async with ts.open_nursery() as an:
        with pytest.raises(TypeError, match='enable_modules'):
            await an.start_actor('typo', enable_modules=bad)
        assert an.children == []  # refused before anything was spawned


@trio_parent_test(timeout=20)
async def test_a_boot_failure_names_its_root_cause_in_a_short_message(start_method):
    async with ts.open_nursery() as an:
        with pytest.raises(ts.ActorFailure) as info:
            await an.start_actor('doomed', enable_modules=['no_such_module_for_tractor_subint'])
    err = info.value
    lines = str(err).splitlines()
    assert lines[0] == (
        "actor 'doomed' failed to boot: "
        "ModuleNotFoundError: No module named 'no_such_module_for_tractor_subint'"
    )
    assert len(lines) <= 2
    assert 'rc=' in lines[1]
    assert err.traceback is not None and 'Traceback (most recent call last)' in err.traceback
    assert err.root_cause == lines[0].split(': ', 1)[1]


# -- 13. bytes the parent cannot decode, values nested too deep ------------------

@trio_parent_test(timeout=20)
async def test_a_value_nested_too_deep_fails_only_its_call(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        with trio.fail_after(5):
            # Refused by the child's encoder (3.13: RecursionError there) or,
            # when it encodes, by our decoder (3.14's C-stack check).
            with pytest.raises((ts.RemoteActorError, ts.ValueDecodeError)) as info:
                await portal.run(hostile_targets.nested_list, depth=100_000)
        if isinstance(info.value, ts.RemoteActorError):  # msgpack: the recursion limit; marshal: its own
            error = info.value
            assert 'recursion depth' in error.remote_message or 'too deeply nested' in error.remote_message
        assert await portal.run(actor_targets.add, a=1, b=2) == 3
        await portal.cancel_actor()
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_a_reply_whose_value_does_not_decode_fails_only_its_call(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('hostile', enable_modules=MODULES)
        # A fresh portal's first call has call id 1: the child answers it with
        # a well-formed reply whose value is 100000 arrays deep.
        with trio.fail_after(5):
            with pytest.raises(ts.ValueDecodeError, match="actor 'hostile' sent a Return value"):
                await portal.run(
                    hostile_targets.write_to_parent_socket,
                    body=hostile_targets.deeply_nested_reply(get_backend(start_method).codec, 100_000),
                )
        assert await portal.run(actor_targets.add, a=1, b=2) == 3  # the channel is in step
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_a_child_writing_an_undecodable_frame_is_killed_and_named(start_method):
    with pytest.raises(ts.ActorFailure) as info:
        with trio.fail_after(5):  # the parent's loop never blocks on the bytes
            async with ts.open_nursery() as an:
                portal = await an.start_actor('hostile', enable_modules=MODULES)
                with pytest.raises(ts.ActorFailure) as pending:
                    await portal.run(hostile_targets.write_to_parent_socket, body=b'\xc1 not msgpack')
    assert 'it sent what the protocol does not allow' in str(pending.value)
    assert 'does not decode' in str(pending.value)
    assert pending.value.exit_status is not None
    if runs_in_this_process(start_method):  # "killed": asked to stop, as by SIGKILL
        assert pending.value.returncode == 128 + signal.SIGKILL
    else:
        assert pending.value.exit_status.signal == signal.SIGKILL
    assert 'was killed' in str(info.value)  # the nursery says so too
    assert not_reaped([portal.pid]) == []
    # The parent is still usable: a new tree spawns and answers.
    async with ts.open_nursery() as an:
        again = await an.start_actor('again', enable_modules=MODULES)
        assert await again.run(actor_targets.add, a=1, b=2) == 3
        await again.cancel_actor()


# -- 14. a parent with a very long sys.path ---------------------------------------

@trio_parent_test(timeout=30)
async def test_a_parent_with_a_200_kib_sys_path_can_spawn(start_method, monkeypatch):
    padding = [f'/nonexistent/tractor-subint-padding/{i:06d}' for i in range(5000)]
    monkeypatch.setattr(sys, 'path', [*sys.path, *padding])
    assert len(os.pathsep.join(sys.path)) > 200 * 1024  # beyond one argv/env string
    async with ts.open_nursery() as an:
        portal = await an.start_actor('long-path', enable_modules=MODULES)
        child_path = await portal.run(actor_targets.echo_sys_path)
        await portal.cancel_actor()
    assert child_path[-len(padding):] == padding
    assert not_reaped([portal.pid]) == []


# -- 5. streams: a bounded buffer, flow control or a clear overrun ----------------

@trio_parent_test(timeout=30)
async def test_a_fast_producer_waits_for_a_slow_consumer(start_method):
    window, total = 16, 2000
    async with ts.open_nursery() as an:
        portal = await an.start_actor('producer', enable_modules=MODULES)
        received = []
        async with portal.open_stream_from(
            hostile_targets.produce, key='s', n=total, max_buffer=window
        ) as stream:
            received.append(await stream.__anext__())
            # The producer fills the window and stops: nothing more was sent
            # while we read nothing more (the (window+1)-th item waits).
            assert await portal.run(hostile_targets.wait_sent, key='s', at_least=window) == window
            assert await portal.run(hostile_targets.sent, key='s') == window
            async for item in stream:
                received.append(item)
                assert len(stream._source._replies) <= window
        assert received == list(range(total))  # nothing lost, in order
        await portal.cancel_actor()
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=30)
async def test_an_overrun_stream_raises_stream_overrun_and_the_actor_lives(start_method):
    limit, total = 8, 100
    async with ts.open_nursery() as an:
        portal = await an.start_actor('producer', enable_modules=MODULES)
        with pytest.raises(ts.StreamOverrun, match=f'more than {limit} stream items'):
            async with portal.open_stream_from(
                hostile_targets.produce, key='o', n=total, max_buffer=limit, on_overrun='raise'
            ) as stream:
                assert await stream.__anext__() == 0
                # Replies arrive in order: once this answers, every item has
                # reached us, and the buffer overflowed on the way.
                await portal.run(hostile_targets.wait_sent, key='o', at_least=total)
                for expected in range(1, limit + 1):
                    assert await stream.__anext__() == expected
                await stream.__anext__()
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()


@pytest.mark.parametrize('bad', [{'max_buffer': 0}, {'max_buffer': 'x'}, {'on_overrun': 'drop'}])
@trio_parent_test(timeout=20)
async def test_stream_options_are_checked(start_method, bad):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('producer', enable_modules=MODULES)
        with pytest.raises(ValueError):
            async with portal.open_stream_from(actor_targets.count_to, n=3, **bad):
                pass
        await portal.cancel_actor()


@trio_parent_test(timeout=60)
async def test_breaking_out_of_streams_early_leaks_nothing(start_method):
    def open_fds() -> int:
        return len(os.listdir('/proc/self/fd'))

    # No warm pool: its refills open and close fds of their own meanwhile.
    async with ts.open_nursery(warm_pool=0) as an:
        portal = await an.start_actor('producer', enable_modules=MODULES)

        async def break_early() -> None:
            async with portal.open_stream_from(hostile_targets.produce, key='b', n=10**6) as stream:
                async for item in stream:
                    if item == 3:
                        break

        for _ in range(5):
            await break_early()
        before = open_fds()
        for _ in range(100):
            await break_early()
        assert open_fds() - before <= 0
        assert await portal.run(actor_targets.add, a=1, b=1) == 2
        await portal.cancel_actor()
