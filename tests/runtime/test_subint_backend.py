"""The in-process ``subint`` backend (issue 10), tested on its
own whatever ``--spawn-backend`` says: an actor is a fresh subinterpreter
of this process on a thread of its own."""
from __future__ import annotations

import _interpreters
import os
import signal
import subprocess
import sys
import threading

import actor_targets
import payload_targets
import pytest
import trio
from _rt_helpers import ScriptProcess, actor_interpreters, script_env

import tractor_subint as ts
from tractor_subint.runtime._boot import ENTRY
from tractor_subint.spawn import current_tree, live_subinterpreters
from tractor_subint.spawn.backends.subint import MODE_ENV_VAR
from tractor_subint.spawn.pool._interpreters import REUSE_ENV_VAR, local_interpreter_pool
from tractor_subint.spawn.pool._sizing import DEFAULT_SIZE, ENV_VAR
from tractor_subint.testing import trio_parent_test


def _subint_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith('subint-actor')]


@pytest.mark.parametrize('mode', ['isolated', 'legacy'])
@trio_parent_test(timeout=30)
async def test_an_actor_is_a_subinterpreter_of_this_process(monkeypatch, mode):
    monkeypatch.setenv(MODE_ENV_VAR, mode)
    async with ts.open_nursery(start_method='subint') as an:
        portal = await an.start_actor('inside', enable_modules=['actor_targets'])
        where = await portal.run(actor_targets.interpreter)
        assert where['pid'] == os.getpid() == portal.pid
        assert where['interp_id'] != 0
        assert where['native_thread_id'] != threading.get_native_id()  # a thread of its own
        assert await portal.run(actor_targets.add, a=2, b=40) == 42
        async with portal.open_stream_from(actor_targets.count_to, n=4) as stream:
            assert [item async for item in stream] == [0, 1, 2, 3]
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(actor_targets.raise_boom, message='inside')
        assert info.value.type_name == 'actor_targets.BoomError'
        assert await portal.cancel_actor() is True
    # Nothing left behind: its thread is gone, its interpreter destroyed or
    # recycled into the warm pool.
    assert _subint_threads() == []
    assert actor_interpreters() == []


def _gil(interp_id: int) -> str:
    return str(_interpreters.get_config(interp_id).gil)


@trio_parent_test(timeout=30)
async def test_each_actor_picks_its_interpreter(monkeypatch):
    # One tree, two kinds: an isolated actor (the default) refuses msgspec and
    # says how to load it; a legacy sibling loads it.
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint') as an:
        with pytest.raises(ts.ActorFailure) as info:
            await an.start_actor('picky', enable_modules=['msgspec'])
        lenient = await an.start_actor(
            'lenient', enable_modules=['actor_targets', 'msgspec'], interpreter='legacy',
        )
        isolated = await an.start_actor('own-gil', enable_modules=['actor_targets'])
        assert _gil((await lenient.run(actor_targets.interpreter))['interp_id']) == 'shared'
        assert _gil((await isolated.run(actor_targets.interpreter))['interp_id']) == 'own'
        assert await lenient.run(actor_targets.add, a=1, b=1) == 2
        await an.cancel()
    first_line = str(info.value).splitlines()[0]
    assert "enabled module 'msgspec' cannot load in this actor's isolated subinterpreter" in first_line
    assert "interpreter='legacy'" in first_line
    assert _subint_threads() == []
    assert actor_interpreters() == []


@trio_parent_test(timeout=30)
async def test_the_tree_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(MODE_ENV_VAR, 'legacy')
    async with ts.open_nursery(start_method='subint') as an:
        legacy = await an.start_actor('lenient', enable_modules=['actor_targets', 'msgspec'])
        isolated = await an.start_actor('own-gil', enable_modules=['actor_targets'], interpreter='isolated')
        assert _gil((await legacy.run(actor_targets.interpreter))['interp_id']) == 'shared'
        assert _gil((await isolated.run(actor_targets.interpreter))['interp_id']) == 'own'
        await an.cancel()
    assert actor_interpreters() == []


@trio_parent_test(timeout=30)
async def test_a_bad_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(MODE_ENV_VAR, 'shared')
    async with ts.open_nursery(start_method='subint') as an:
        with pytest.raises(ValueError, match=f'{MODE_ENV_VAR} must be'):
            await an.start_actor('never', enable_modules=['actor_targets'])
        with pytest.raises(ValueError, match='interpreter must be one of .isolated., .legacy.'):
            await an.start_actor('never', enable_modules=['actor_targets'], interpreter='shared')
    with pytest.raises(ValueError, match="spawn method 'trio' offers no choice of interpreter"):
        async with ts.open_nursery(start_method='trio') as an:
            await an.run_in_actor(actor_targets.add, interpreter='legacy', a=1, b=2)
    assert _subint_threads() == []


@trio_parent_test(timeout=30)
async def test_main_defined_targets_two_levels_of_subint_actors_down(tmp_path):
    # A subint actor spawns a subint child of its own; both load this script
    # as __mp_main__ to find its functions.
    env = script_env('subint')
    async with ScriptProcess.running('nested_main_target.py', env, tmp_path) as script:
        leaf = await script.read_json_after('LEAF')
        await script.read_until('DONE')
        rc = await script.proc.wait()
    assert rc == 0, script.describe()
    assert isinstance(leaf, dict)
    assert (leaf['actor'], leaf['module'], leaf['middle_name']) == ('leaf', '__mp_main__', '__mp_main__')
    assert leaf['pid'] == script.proc.pid  # all in the root's process


@trio_parent_test(timeout=30)
async def test_ctrl_c_ends_a_root_with_subint_actors_with_status_130(tmp_path):
    # Ctrl-C in a terminal: the whole process group, here one process.
    async with ScriptProcess.running('tree_then_wait.py', script_env('subint'), tmp_path) as script:
        ready = await script.read_json_after('READY')
        assert isinstance(ready, dict) and ready['actors'] == [script.proc.pid] * 2
        os.killpg(script.proc.pid, signal.SIGINT)
        rest = await script.read_rest()
        rc = await script.proc.wait()
    assert rc == 130, script.describe()
    assert any(line.startswith('INTERRUPTED') for line in rest), script.describe()


@trio_parent_test(timeout=30)
async def test_a_blocked_subint_actor_ends_when_its_blocking_call_returns(fifo, caplog):
    # No signal ends a thread: the kill ladder's requests wait for the
    # blocking call to return (the documented bound), then the actor exits.
    async with ts.open_nursery(start_method='subint') as an:
        portal = await an.start_actor('blocker', enable_modules=['actor_targets'])

        async def run_blocking() -> None:
            try:
                await portal.run(actor_targets.blocking_sleep, seconds=2, fifo=fifo.path)
            except ts.ActorFailure as exc:
                assert exc.stop_requested  # cut short by our own cancel_actor()

        async with trio.open_nursery() as tn:
            tn.start_soon(run_blocking)
            assert (await fifo.receive_line()).startswith('blocking')
            assert await portal.cancel_actor() is False  # no ack: it was blocked
            tn.cancel_scope.cancel()
        assert portal.pid == os.getpid()
    assert _subint_threads() == []
    assert actor_interpreters() == []
    # The ladder's last step says what it is in-process: no SIGKILL to be had.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert any('it runs in this process, where nothing ends a blocking call' in w for w in warnings)
    assert not any('SIGKILL' in w for w in warnings)


@pytest.mark.parametrize('method', ['main_thread_forkserver', 'subint_forkserver'])
@trio_parent_test(timeout=60)
async def test_a_subint_actor_gets_forked_children_from_the_tree_s_forkserver(method):
    # This process holds subinterpreters: it must not fork, so a subint
    # actor's fork-backend child comes from the tree's forkserver process.
    async with ts.open_nursery(start_method='subint') as an:
        portal = await an.start_actor('middle', enable_modules=['actor_targets'])
        report = await portal.run(actor_targets.spawn_and_report, start_method=method)
        tree = current_tree()
        assert tree is not None
        forkserver = tree.forkserver_pid  # started by the actor's request
        await portal.cancel_actor()
    assert report['sum'] == 5
    assert forkserver not in (None, os.getpid())
    assert report['pid'] not in (os.getpid(), forkserver)
    assert report['ppid'] == forkserver
    assert actor_interpreters() == []


# -- the warm pool of interpreters --------------------------------------------------


async def _ready_interpreters(count: int, kind: str = 'isolated'):
    pool = local_interpreter_pool(kind, ENTRY)
    assert pool is not None
    assert await trio.to_thread.run_sync(pool.wait_ready, count, 30)
    return pool


@trio_parent_test(timeout=60)
async def test_an_actor_takes_a_warm_interpreter_and_a_clean_end_gives_it_back(monkeypatch):
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    monkeypatch.delenv(REUSE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint', warm_pool=1) as an:
        pool = await _ready_interpreters(1)
        (warm,) = pool.idle()
        first = await an.start_actor('first', enable_modules=['actor_targets'])
        assert (await first.run(actor_targets.interpreter))['interp_id'] == warm
        await first.run(actor_targets.publish, key='left-behind', value=1)
        monkeypatch.setenv('TRACTOR_SUBINT_POOL_TEST_VAR', 'set after the first actor')
        assert await first.cancel_actor() is True
        assert warm in pool.idle()  # recycled, not destroyed
        second = await an.start_actor('second', enable_modules=['actor_targets'])
        assert (await second.run(actor_targets.interpreter))['interp_id'] == warm
        # The actor's own module is imported afresh; the environment is today's.
        assert await second.run(actor_targets.published_keys) == []
        seen = await second.run(actor_targets.surroundings, env_var='TRACTOR_SUBINT_POOL_TEST_VAR')
        assert seen['env'] == 'set after the first actor'
        await second.cancel_actor()
    assert actor_interpreters() == []


@trio_parent_test(timeout=60)
async def test_a_recycled_interpreter_forgets_what_the_runtime_kept_for_the_last_actor(monkeypatch):
    # The runtime caches the type hints of the functions an actor serves and
    # keeps the payload types its modules register: neither may reach the
    # next actor, nor keep the last one's module alive (on 3.13 a tree of
    # 200 actors grew ~20 MB through them). Legacy: the module imports msgspec.
    monkeypatch.delenv(REUSE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint', warm_pool=1) as an:
        first = await an.start_actor('typed', enable_modules=['payload_targets'], interpreter='legacy')
        interp = (await first.run(actor_targets.interpreter))['interp_id']
        assert await first.run(payload_targets.echo, value=[1]) == [1]  # its hints are cached
        assert await first.run(actor_targets.leftovers_of, module='payload_targets') == {
            'loaded': True, 'alive': 1, 'registered': ['payload_targets.Tagged'],
        }
        assert await first.cancel_actor() is True
        second = await an.start_actor('next', enable_modules=['actor_targets'], interpreter='legacy')
        assert (await second.run(actor_targets.interpreter))['interp_id'] == interp  # recycled
        assert await second.run(actor_targets.leftovers_of, module='payload_targets') == {
            'loaded': False, 'alive': 0, 'registered': [],
        }
        await second.cancel_actor()
    assert actor_interpreters() == []


@trio_parent_test(timeout=60)
async def test_an_actor_that_failed_is_not_recycled(monkeypatch):
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint', warm_pool=1) as an:
        pool = await _ready_interpreters(1)
        (warm,) = pool.idle()
        with pytest.raises(ts.ActorFailure):
            await an.start_actor('broken', enable_modules=['no_such_module_anywhere'])
    assert warm not in _interpreters.list_all()  # destroyed: its end was not clean
    assert actor_interpreters() == []


@trio_parent_test(timeout=60)
async def test_reuse_can_be_turned_off(monkeypatch):
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    monkeypatch.setenv(REUSE_ENV_VAR, '0')
    async with ts.open_nursery(start_method='subint', warm_pool=1) as an:
        pool = await _ready_interpreters(1)
        (warm,) = pool.idle()
        portal = await an.start_actor('once', enable_modules=['actor_targets'])
        assert (await portal.run(actor_targets.interpreter))['interp_id'] == warm
        await portal.cancel_actor()
    assert warm not in _interpreters.list_all()


@trio_parent_test(timeout=60)
async def test_no_pool_without_a_size(monkeypatch):
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint', warm_pool=0) as an:
        portal = await an.start_actor('cold', enable_modules=['actor_targets'])
        interp = (await portal.run(actor_targets.interpreter))['interp_id']
        await portal.cancel_actor()
        assert local_interpreter_pool('isolated', ENTRY) is None
    assert interp not in _interpreters.list_all()


@trio_parent_test(timeout=60)
async def test_an_adaptive_pool_warms_no_interpreter_for_the_first_actor(monkeypatch):
    # A one-actor program must not wait at its exit for interpreters still
    # importing (none can be destroyed mid-import): the pool wakes at the
    # second actor.
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(REUSE_ENV_VAR, raising=False)
    async with ts.open_nursery(start_method='subint') as an:
        pool = local_interpreter_pool('isolated', ENTRY)
        assert pool is not None and pool.dormant and pool.size == 0 and pool.idle() == []
        first = await an.start_actor('first', enable_modules=['actor_targets'])
        interp = (await first.run(actor_targets.interpreter))['interp_id']
        # Its keeper was woken by the take: with a target of 0, it warms nothing.
        assert pool.dormant and pool.size == 0
        assert pool.warming() is None and pool.idle() == []
        assert sorted(live_subinterpreters()) == [interp]  # the actor's own, and no other
        assert await first.cancel_actor() is True
        assert pool.idle() == [interp]  # its own, recycled; none warmed beside it
        second = await an.start_actor('second', enable_modules=['actor_targets'])
        assert (await second.run(actor_targets.interpreter))['interp_id'] == interp
        assert not pool.dormant and pool.size == DEFAULT_SIZE  # woken by the second actor
        await _ready_interpreters(DEFAULT_SIZE)  # and warming now
        assert interp not in pool.idle()
        await second.cancel_actor()
    assert actor_interpreters() == []


@trio_parent_test(timeout=120)
async def test_actors_one_after_another_reuse_one_interpreter(monkeypatch):
    # The pool follows how many actors run at once, not how many were
    # spawned: a long-lived tree of short actors keeps using the same ones
    # (on 3.13 each destroyed isolated interpreter keeps ~9 MiB).
    monkeypatch.delenv(MODE_ENV_VAR, raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    seen = set()
    async with ts.open_nursery(start_method='subint') as an:
        for i in range(12):
            portal = await an.start_actor(f'seq{i}', enable_modules=['actor_targets'])
            seen.add((await portal.run(actor_targets.interpreter))['interp_id'])
            await portal.cancel_actor()
        pool = local_interpreter_pool('isolated', ENTRY)
        assert pool.size == DEFAULT_SIZE
    assert len(seen) <= DEFAULT_SIZE + 1, seen


_PROGRAM = """
import _interpreters, atexit
# Registered first, so it runs last: after tractor_subint's own exit hooks.
atexit.register(lambda: print('LEFT', len(_interpreters.list_all()) - 1, flush=True))
import actor_targets, trio
import tractor_subint as ts

async def main():
    async with ts.open_nursery(start_method='subint') as an:
        for name in ('one', 'two'):  # the second wakes the pool: it warms as we exit
            portal = await an.start_actor(name, enable_modules=['actor_targets'])
            assert await portal.run(actor_targets.add, a=1, b=2) == 3
            await portal.cancel_actor()
    print('DONE', flush=True)

trio.run(main)
"""


def test_a_program_of_subint_actors_leaves_no_interpreter_at_exit(monkeypatch):
    # The warm pool outlives the tree; the process's exit ends it (else 3.14
    # warns about remaining subinterpreters, and 3.13 finalizes them late).
    env = script_env('subint')
    env.pop(MODE_ENV_VAR, None)
    env.pop(ENV_VAR, None)
    tests_dir = os.path.dirname(actor_targets.__file__)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [tests_dir, env.get('PYTHONPATH')]))
    done = subprocess.run(
        [sys.executable, '-c', _PROGRAM], env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['DONE', 'LEFT', '0'], done.stdout
    assert 'subinterpreter' not in done.stderr, done.stderr
