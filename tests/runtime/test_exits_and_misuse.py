"""Issue 17: every exit named, misuse refused before anything is sent, a
portal kept to its own loop, a child that cuts its channel ended, a call
whose arguments do not decode failed alone."""
from __future__ import annotations

import struct

import actor_targets
import hostile_targets
import pytest
import trio
from _rt_helpers import not_reaped, reap_zombies

import tractor_subint as ts
from tractor_subint.runtime._msgs import CALL_TAG, Failed
from tractor_subint.runtime._testhooks import HOOKS_ENV
from tractor_subint.testing import descendants, trio_parent_test

MODULES = ['actor_targets', 'hostile_targets']


# -- 2. a BaseException in a target: the call hears it, then the actor ends -----

@pytest.mark.parametrize(
    ('target', 'kwargs', 'headline'),
    [
        (hostile_targets.exit_with, {'code': 3}, 'SystemExit: 3'),
        (hostile_targets.interrupt, {}, 'KeyboardInterrupt'),
        (hostile_targets.raise_halt, {}, 'hostile_targets.Halt: stop everything'),
    ],
    ids=['SystemExit', 'KeyboardInterrupt', 'other-BaseException'],
)
@trio_parent_test(timeout=20)
async def test_a_base_exception_fails_its_call_by_name_and_ends_the_actor(
    start_method, target, kwargs, headline,
):
    with pytest.raises(ts.ActorFailure) as ended:
        async with ts.open_nursery() as an:
            portal = await an.start_actor('x', enable_modules=MODULES)
            with trio.fail_after(5):
                with pytest.raises(ts.RemoteActorError) as info:
                    await portal.run(target, **kwargs)
            assert str(info.value).splitlines()[0] == headline
            assert "ends its actor: actor 'x' exited" in info.value.remote_traceback
            # The actor is gone: the nursery says how it ended, by name.
    # A host that turns SystemExit into its exit code says rc=3; otherwise
    # the exit report names the exception (never a traceback's border).
    named = headline.split(':')[0]
    assert str(ended.value).startswith("actor 'x' exited unexpectedly: ")
    if ended.value.returncode != 3:
        assert ended.value.root_cause is not None and named in ended.value.root_cause
    assert '+---' not in str(ended.value)
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_an_actor_slow_to_exit_after_its_channel_closed_is_not_called_unreachable(
    start_method, monkeypatch,
):
    """The parent judges a child whose channel ended "unreachable" if it has
    not exited within a grace; a SystemExit actor that is merely slow to exit
    (a loaded machine; here forced by a grace of 0) still ended on its own:
    its exit is named as such, with its code, not as the kill ladder's."""
    monkeypatch.setenv(HOOKS_ENV, 'parent_unreachable_grace=0')
    with pytest.raises(ts.ActorFailure) as ended:
        async with ts.open_nursery() as an:
            portal = await an.start_actor('x', enable_modules=MODULES)
            with trio.fail_after(5), pytest.raises(ts.RemoteActorError):
                await portal.run(hostile_targets.exit_with, code=3)
    assert str(ended.value).startswith("actor 'x' exited unexpectedly: "), ended.value
    assert 'kept running' not in str(ended.value)
    assert not_reaped([portal.pid]) == []


@pytest.mark.parametrize('target', [hostile_targets.exit_with, hostile_targets.raise_halt])
@trio_parent_test(timeout=20)
async def test_a_base_exception_in_run_in_actor_is_its_result(start_method, target):
    kwargs = {'code': 3} if target is hostile_targets.exit_with else {}
    with pytest.raises(ts.RemoteActorError) as info:
        async with ts.open_nursery() as an:
            portal = await an.run_in_actor(target, **kwargs)
    assert info.value.type_name in ('SystemExit', 'hostile_targets.Halt')
    assert '+---' not in str(info.value).splitlines()[0]
    assert not_reaped([portal.pid]) == []


def test_root_cause_of_an_exception_group_traceback_is_its_leaf():
    from tractor_subint.runtime._errors import _last_error_line

    text = (
        '  + Exception Group Traceback (most recent call last):\n'
        '  |   File "x.py", line 1, in f\n'
        '  | BaseExceptionGroup: Exceptions from Trio nursery (1 sub-exception)\n'
        '  +-+---------------- 1 ----------------\n'
        '    | Traceback (most recent call last):\n'
        '    |   File "x.py", line 2, in g\n'
        '    | SystemExit: 3\n'
        '    +------------------------------------\n'
    )
    assert _last_error_line(text) == 'SystemExit: 3'
    plain = 'Traceback (most recent call last):\n  File "x"\nValueError: v\n'
    assert _last_error_line(plain) == 'ValueError: v'


# -- 3. a target that closes its own channel and keeps running ------------------

@trio_parent_test(timeout=20)
async def test_a_target_that_cuts_its_channel_and_runs_on_is_failed_and_ended(start_method):
    cut = 'closed its channel to the parent and kept running'
    with pytest.raises(ts.ActorFailure) as ended:
        async with ts.open_nursery() as an:
            portal = await an.start_actor('cutter', enable_modules=MODULES)
            with trio.fail_after(2):  # the EOF, not the target's return, ends the call
                with pytest.raises(ts.ActorFailure) as pending:
                    await portal.run(hostile_targets.close_parent_socket_and_wait)
    # Ended by the kill ladder, as the target runs on; or, now and then, by
    # trio itself: its own wait on the fd the target closed can fail (the
    # fd's number reused meanwhile) and end the actor first. Either way the
    # call failed at once and the actor is gone.
    if cut in str(pending.value):
        assert cut in str(ended.value)
    else:
        assert 'went away while a call was pending' in str(pending.value), pending.value.traceback
        assert 'exited unexpectedly' in str(ended.value)
    assert ended.value.exit_status is not None
    assert not_reaped([portal.pid]) == []


# -- 4. arguments the actor cannot decode ----------------------------------------

def _deep_call_frame(codec: str, cid: int, depth: int) -> bytes:
    """A well-formed Call of actor_targets.echo whose argument nests ``depth``
    lists, written by hand (encoders refuse to build it), length-prefixed."""
    module, qualname = b'actor_targets', b'echo'
    if codec == 'msgpack':
        body = (
            bytes([0x97, CALL_TAG, cid, 0xA0 | len(module)]) + module
            + bytes([0xA0 | len(qualname)]) + qualname
            + b'\x81\xa5value' + b'\x91' * depth + b'\x90' + b'\xc2\x00'
        )
    else:
        def text(s: bytes) -> bytes:
            return b'u' + struct.pack('<i', len(s)) + s

        def i32(n: int) -> bytes:
            return b'i' + struct.pack('<i', n)

        body = (
            b'[' + struct.pack('<i', 7) + i32(CALL_TAG) + i32(cid) + text(module) + text(qualname)
            + b'{' + text(b'value') + (b'[' + struct.pack('<i', 1)) * depth
            + b'[' + struct.pack('<i', 0) + b'0' + b'F' + i32(0)
        )
    return struct.pack('>I', len(body)) + body


@trio_parent_test(timeout=20)
async def test_a_call_whose_arguments_do_not_decode_fails_alone(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('reader', enable_modules=MODULES)
        cid, replies = portal._calls.open()
        codec = portal.channel._codec.name
        await portal.channel.send_raw(_deep_call_frame(codec, cid, 100_000))
        with trio.fail_after(5):
            reply = await replies.get()
        portal._calls.forget(cid)
        assert isinstance(reply, Failed)
        assert reply.error.type_name == 'tractor_subint.ValueDecodeError'
        assert "cannot be decoded in actor 'reader'" in reply.error.message
        assert await portal.run(actor_targets.add, a=1, b=2) == 3  # it lives, in step
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_a_too_deep_argument_fails_its_call_clearly_and_the_actor_lives(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('reader', enable_modules=MODULES)
        with trio.fail_after(5):
            # Refused by our encoder (3.13, marshal) before sending, or by the
            # actor's decoder (3.14's C-stack check): never a lost actor.
            with pytest.raises((TypeError, ts.RemoteActorError)) as info:
                await portal.run(actor_targets.echo, value=hostile_targets.nested_list(100_000))
        if isinstance(info.value, ts.RemoteActorError):
            assert info.value.type_name == 'tractor_subint.ValueDecodeError'
        else:
            assert 'cannot send Call' in str(info.value)
        assert await portal.run(actor_targets.add, a=1, b=2) == 3
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


# -- 5. targets checked before anything is sent ---------------------------------

@trio_parent_test(timeout=20)
async def test_targets_are_checked_before_anything_is_sent(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('checked', enable_modules=MODULES)
        with pytest.raises(TypeError, match='bound to a Counter instance'):
            await portal.run(hostile_targets.Counter().bump, n=1)
        assert await portal.run(hostile_targets.Counter.static_bump, n=1) == 2
        assert await portal.run(hostile_targets.Counter.class_bump, n=1) == 2
        with pytest.raises(TypeError, match='async generator function: .*open_stream_from'):
            await portal.run(actor_targets.count_to, n=1)
        for target, kind in ((hostile_targets.sync_counter, 'not an async generator function'),
                             (hostile_targets.async_counter, 'an async function')):
            with pytest.raises(TypeError, match=kind):
                async with portal.open_stream_from(target, n=3):
                    pytest.fail('the stream opened')
        with pytest.raises(TypeError, match='bound to a Counter instance'):
            await an.run_in_actor(hostile_targets.Counter().bump, n=1)
        assert await portal.run(hostile_targets.ran) == []  # nothing ran there
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=20)
async def test_the_actor_checks_a_target_before_calling_it(start_method, recwarn):
    from tractor_subint.runtime._msgs import Call

    async with ts.open_nursery() as an:
        portal = await an.start_actor('checked', enable_modules=MODULES)
        for qualname in ('sync_counter', 'async_counter'):
            # Sent raw, past the portal's own check.
            cid, replies = portal._calls.open()
            await portal.channel.send(Call(cid, 'hostile_targets', qualname, {'n': 1}, True, 4))
            with trio.fail_after(5):
                reply = await replies.get()
            portal._calls.forget(cid)
            assert isinstance(reply, Failed) and 'not an async generator function' in reply.error.message
        assert await portal.run(hostile_targets.ran) == []
        assert await portal.cancel_actor() is True
    assert not [w for w in recwarn if 'never awaited' in str(w.message)]


# -- 6. a portal used from another trio.run --------------------------------------

@trio_parent_test(timeout=20)
async def test_a_portal_used_from_another_trio_run_is_refused_at_once(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('owned', enable_modules=MODULES)

        def from_another_loop() -> BaseException | None:
            async def use() -> None:
                with trio.fail_after(2):
                    await portal.run(actor_targets.add, a=1, b=2)
            try:
                trio.run(use)
            except BaseException as exc:
                return exc
            return None

        error = await trio.to_thread.run_sync(from_another_loop)
        assert isinstance(error, RuntimeError), repr(error)
        assert "belongs to the trio.run() that spawned it (in thread 'MainThread'" in str(error)
        with trio.fail_after(5):  # the owner is unaffected
            assert await portal.run(actor_targets.add, a=1, b=2) == 3
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


# -- 7. a call after cancel_actor -------------------------------------------------

@trio_parent_test(timeout=20)
async def test_a_call_after_cancel_actor_says_this_caller_cancelled_it(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('done', enable_modules=MODULES)
        assert await portal.cancel_actor() is True
        with trio.fail_after(1):
            with pytest.raises(ts.ActorCancelled) as info:
                await portal.run(actor_targets.add, a=1, b=2)
    assert str(info.value) == "actor 'done' was cancelled (by this caller)"
    assert isinstance(info.value, ts.ActorFailure) and info.value.stop_requested


@trio_parent_test(timeout=20)
async def test_a_call_pending_when_the_caller_cancels_says_so(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('busy', enable_modules=MODULES)
        pending = await portal.submit(actor_targets.sleep_forever)
        assert await portal.cancel_actor() is True
        with trio.fail_after(2):
            with pytest.raises(ts.ActorCancelled) as info:
                await pending.result()
    assert str(info.value) == "actor 'busy' was cancelled (by this caller) while this call was pending"


# -- 1. the tree's forkserver dies: the next nested spawn heals the tree ----------

@trio_parent_test(timeout=60)
async def test_nested_spawns_heal_after_the_trees_forkserver_is_killed(start_method):
    import os
    import signal

    from tractor_subint.spawn import current_tree

    async with ts.open_nursery() as an:
        portal = await an.start_actor('middle', enable_modules=MODULES)
        first = await portal.run(actor_targets.spawn_and_report, start_method=start_method)
        assert first['sum'] == 5
        tree = current_tree()
        assert tree is not None
        server_pid = tree.forkserver_pid
        if server_pid is None:
            await portal.cancel_actor()
            pytest.skip(f'{start_method}: nested spawns do not go through the tree\'s forkserver')
        # Its idle warm pool members are orphaned with it: they end by
        # themselves, re-parented to us, and are reaped below.
        orphans = [info.pid for info in descendants(server_pid) if info.comm == 'ts:warm']
        os.kill(server_pid, signal.SIGKILL)
        owned = tree.forkserver  # the root's OnDemandForkserver
        assert owned is not None
        # A request sent before the owner noticed would be "in flight", and
        # told of the death: this one is sent after.
        assert await trio.to_thread.run_sync(owned.wait_deaths, 1, 5.0)
        with trio.fail_after(8):  # not the 10 s reply timeout, for ever after
            again = await portal.run(actor_targets.spawn_and_report, start_method=start_method)
        assert again['sum'] == 5
        assert tree.forkserver_pid not in (None, server_pid)
        await portal.cancel_actor()
    assert await reap_zombies(orphans, timeout=10) == []
    assert not_reaped([portal.pid, first['pid'], again['pid']]) == []


# -- 11. the frame limit: documented, named in its error, set per nursery ----------

MIB = 1024 * 1024


@trio_parent_test(timeout=60)
async def test_a_message_over_the_default_frame_limit_is_refused_by_name(start_method):
    from tractor_subint.runtime import MAX_FRAME

    assert MAX_FRAME == 64 * MIB
    async with ts.open_nursery() as an:
        portal = await an.start_actor('framed', enable_modules=MODULES)
        with pytest.raises(ts.FrameTooLarge) as info:
            await portal.run(actor_targets.echo, value=b'x' * (64 * MIB + 1))
        text = str(info.value)
        assert 'exceeds the frame limit of 67108864 bytes (64 MiB)' in text
        assert 'open_nursery(max_frame=...)' in text
        assert isinstance(info.value, ValueError)
        assert await portal.run(actor_targets.add, a=1, b=2) == 3  # nothing was sent
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


@trio_parent_test(timeout=60)
async def test_the_frame_limit_is_set_per_nursery_for_both_ends(start_method):
    async with ts.open_nursery(max_frame=1 * MIB) as an:
        portal = await an.start_actor('small', enable_modules=MODULES)
        assert portal.channel.max_frame == 1 * MIB
        assert await portal.run(actor_targets.echo, value=b'x' * (MIB // 2)) == b'x' * (MIB // 2)
        with pytest.raises(ts.FrameTooLarge, match=r'\(1 MiB\)'):
            await portal.run(actor_targets.echo, value=b'x' * (2 * MIB))
        # The actor's end has the same limit: a reply over it fails that call.
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(hostile_targets.big_bytes, n=2 * MIB)
        assert info.value.type_name.endswith('FrameTooLarge')
        assert await portal.cancel_actor() is True
    async with ts.open_nursery(max_frame=80 * MIB) as an:
        portal = await an.start_actor('large', enable_modules=MODULES)
        assert await portal.run(hostile_targets.length, value=b'x' * (65 * MIB)) == 65 * MIB
        assert await portal.cancel_actor() is True


@pytest.mark.parametrize('bad', [0, -1, 2**32, 1.5, True, '64'])
@trio_parent_test(timeout=10)
async def test_max_frame_is_checked(start_method, bad):
    with pytest.raises(ValueError, match='max_frame must be an int'):
        async with ts.open_nursery(max_frame=bad):
            pytest.fail('opened')
