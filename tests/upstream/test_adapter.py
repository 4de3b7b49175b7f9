"""tractor_subint.upstream: our backends inside upstream tractor.

Runs where upstream tractor is installed (CI installs it from the snapshot
in ../shared/upstream/ into venvs of its own); skipped elsewhere. Upstream's
own suite, run under our keys, is the rest of the proof (.ci/run).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap

import pytest
import trio

tractor = pytest.importorskip('tractor')

from tractor import _root  # noqa: E402
from tractor.spawn import _spawn  # noqa: E402

import tractor_subint.upstream as adapter  # noqa: E402
from tractor_subint.spawn import get_backend  # noqa: E402
from tractor_subint.testing import descendants, trio_parent_test  # noqa: E402

adapter.register()
KEYS = ['main_thread_forkserver', 'subint_forkserver']
THIS = __name__


async def where() -> tuple[int, int]:
    """An RPC target: this actor's pid and interpreter id."""
    import _interpreters

    return os.getpid(), int(_interpreters.get_current()[0])


async def spawn_grandchild() -> tuple[int, int]:
    """In a child: spawn a child of our own with subint_forkserver (as in
    upstream, a child's nurseries do not inherit the key); its pid and parent pid."""
    _spawn.try_set_start_method('subint_forkserver')
    async with tractor.open_nursery() as an:
        portal = await an.start_actor('grandchild', enable_modules=[THIS])
        pid, _interp = await portal.run(where)
        ppid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
        await portal.cancel_actor()
    return pid, ppid


async def peer_names() -> list[str]:
    """An RPC target: the names in this actor's IPC peer table."""
    return sorted(uid[0] for uid in tractor.current_actor().ipc_server._peers)


async def log_critical(text: str) -> None:
    tractor.log.get_logger().critical(text)


async def sleep_forever() -> None:
    await trio.sleep_forever()


def test_register_adds_our_keys_and_is_idempotent():
    adapter.register()
    for key in KEYS:
        assert _spawn._methods[key].__name__ == f'{key}_proc'
        assert key in _spawn.SpawnMethodKey.__args__
    assert 'subint_fork' in _spawn._methods
    assert list(_spawn._methods).count('subint_forkserver') == 1


def test_upstream_keys_still_work_and_unknown_ones_fail_as_before():
    previous = _spawn._spawn_method
    try:
        assert _spawn.try_set_start_method('subint_forkserver') is None
        assert _spawn._spawn_method == 'subint_forkserver'
        _spawn.try_set_start_method('trio')
        assert _spawn._spawn_method == 'trio'
        with pytest.raises(ValueError):
            _spawn.try_set_start_method('no_such_method')
    finally:
        _spawn._spawn_method = previous


def test_debug_mode_is_offered_under_main_thread_forkserver_only():
    # Its actor's trio runs on the child's main thread, where upstream's
    # debugger installs its SIGINT handler and reads the terminal.
    assert 'main_thread_forkserver' in _root._DEBUG_COMPATIBLE_BACKENDS
    assert 'subint_forkserver' not in _root._DEBUG_COMPATIBLE_BACKENDS


@trio_parent_test(timeout=60)
async def test_debug_mode_under_subint_forkserver_is_refused_saying_why_and_what_to_use():
    with pytest.raises(RuntimeError) as info:
        async with tractor.open_root_actor(debug_mode=True, start_method='subint_forkserver'):
            pass
    assert "not 'subint_forkserver'" in str(info.value)
    assert 'subinterpreter on a worker thread' in str(info.value)
    assert "use start_method='main_thread_forkserver' for debug_mode" in str(info.value)


def test_an_unknown_shape_is_refused_naming_what_differs_and_nothing_is_patched():
    # Half of the per-child reap protocol: neither contract.
    probe = textwrap.dedent('''
        from tractor.runtime._supervise import ActorNursery
        import tractor.spawn._spawn as spawn
        ActorNursery._register_child_reap = lambda self, uid: None
        if hasattr(ActorNursery, '_mark_child_reaped'):
            del ActorNursery._mark_child_reaped
        import tractor_subint.upstream as adapter
        try:
            adapter.register()
        except adapter.UnsupportedTractor as exc:
            print('REFUSED', exc)
        print('PATCHED', 'subint_forkserver' in spawn._methods, spawn.try_set_start_method.__module__)
    ''')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=60)
    assert 'REFUSED tractor_subint supports goodboy/tractor with either spawn contract' in out.stdout, out
    assert "'backends reap'" in out.stdout and "'per-child reap'" in out.stdout
    assert 'differs: ActorNursery._mark_child_reaped (per-child reap)' in out.stdout
    assert 'PATCHED False tractor.spawn._spawn' in out.stdout


def test_a_missing_patch_point_is_refused_before_anything_is_patched():
    probe = textwrap.dedent('''
        import tractor.spawn._spawn as spawn
        del spawn.soft_kill
        import tractor_subint.upstream as adapter
        try:
            adapter.register()
        except adapter.UnsupportedTractor as exc:
            print('REFUSED', exc)
        print('PATCHED', 'subint_forkserver' in spawn._methods)
    ''')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=60)
    assert 'differs: tractor.spawn._spawn.soft_kill' in out.stdout, out
    assert 'PATCHED False' in out.stdout


def test_the_installed_tractor_s_spawn_contract_is_read_from_its_features():
    from tractor.runtime._supervise import ActorNursery

    contract = adapter.spawn_contract()
    has_to_actor = importlib.util.find_spec('tractor.to_actor') is not None
    assert contract.per_child_reap == has_to_actor  # #481 brought both
    assert contract.run_in_actor == hasattr(ActorNursery, 'run_in_actor')
    assert contract.registers_with_process == hasattr(ActorNursery, '_register_child')


@pytest.mark.parametrize('override', [False, True])
def test_a_key_upstream_already_provides_stays_upstream_s_unless_overridden(override):
    # As on PR #463's tree, which has its own main_thread_forkserver.
    probe = textwrap.dedent(f'''
        import warnings
        import tractor.spawn._spawn as spawn
        async def upstream_own_mtf(*args, **kwargs): ...
        spawn._methods['main_thread_forkserver'] = upstream_own_mtf
        import tractor_subint.upstream as adapter
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter('always')
            keys = adapter.register(override={override})
        print('KEYS', keys)
        print('MTF', spawn._methods['main_thread_forkserver'].__name__)
        print('WARNED', [str(w.message) for w in seen if w.category is adapter.UpstreamBackendKept])
    ''')
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=60)
    if override:
        assert "MTF main_thread_forkserver_proc" in out.stdout, out
        assert 'WARNED []' in out.stdout
    else:
        assert "KEYS ('subint_forkserver', 'subint_fork')" in out.stdout, out
        assert 'MTF upstream_own_mtf' in out.stdout
        assert "upstream tractor already provides spawn method 'main_thread_forkserver'" in out.stdout


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_an_upstream_tree_runs_on_our_backend(key):
    async with tractor.open_nursery(start_method=key) as an:
        portal = await an.start_actor('worker', enable_modules=[THIS])
        pid, interp = await portal.run(where)
        assert (interp != 0) == get_backend(key).hosts_subinterpreter
        ours = {p.pid: p for p in descendants()}
        assert ours[pid].ppid == os.getpid()
        if adapter.spawn_contract().run_in_actor:
            one_shot = await an.run_in_actor(where, name='one_shot')
            one_shot_pid, _ = await one_shot.wait_for_result()
            assert one_shot_pid not in (pid, os.getpid())
        await portal.cancel_actor()


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_to_actor_runs_its_one_shot_on_our_backend(key):
    to_actor = pytest.importorskip('tractor.to_actor')
    async with tractor.open_nursery(start_method=key) as an:
        pid, interp = await to_actor.run(where, an=an, name='one_shot')
        assert pid != os.getpid()
        assert (interp != 0) == get_backend(key).hosts_subinterpreter
        assert not an._children  # reaped when the call returned


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_a_child_that_dies_before_dialling_back_is_an_actor_failure(key, monkeypatch):
    monkeypatch.setenv('TRACTOR_SUBINT_TEST_HOOKS', 'child_exit_before_ready=3')
    with pytest.raises(BaseException) as info:
        async with tractor.open_nursery(start_method=key) as an:
            await an.start_actor('doomed', enable_modules=[THIS])
    text = repr(info.value) + ''.join(map(repr, getattr(info.value, 'exceptions', ())))
    assert 'ActorFailure' in text and 'died before it connected back: rc=3' in text


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_sigint_to_a_child_cancels_it_like_upstream_s_own(key):
    async with tractor.open_nursery(start_method=key) as an:
        portal = await an.start_actor('sleeper', enable_modules=[THIS])
        (_actor, proc, _portal) = an._children[portal.chan.aid.uid]
        os.kill(proc.pid, signal.SIGINT)  # bridged in by the child's main interpreter
        assert await proc.wait() == 128 + signal.SIGINT
        with pytest.raises(tractor._exceptions.TransportClosed):
            await portal.run(sleep_forever)


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_a_child_back_before_the_parent_waits_is_not_lost(key, monkeypatch):
    # The parent starts waiting only once the child has dialled back and
    # been registered: upstream's wait_for_peer() alone would wait forever.
    monkeypatch.setenv('TRACTOR_SUBINT_TEST_HOOKS', 'upstream_parent_after_connect=1')
    await _an_actor_answers_from_its_own_process(key, 'quick')


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_a_forked_child_has_none_of_its_parent_s_peers(key):
    # 'second' is forked while the root's peer table holds 'first'. That
    # table is shared by every upstream Server (a msgspec default), so a
    # stale copy made 'second' wait 3 s at teardown for a peer it never had.
    async with tractor.open_nursery(start_method=key) as an:
        first = await an.start_actor('first', enable_modules=[THIS])
        second = await an.start_actor('second', enable_modules=[THIS])
        assert 'first' not in await second.run(peer_names)
        assert 'second' not in await first.run(peer_names)
        await an.cancel()


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_a_child_s_log_reaches_pytest_s_fd_capture(key, capfd):
    # Upstream skips its own version of this for fork backends by name
    # ("the IPC handshake reads garbage" under capfd): not so with ours.
    async with tractor.open_nursery(start_method=key) as an:
        portal = await an.start_actor('logger', enable_modules=[THIS], loglevel='critical')
        await portal.run(log_critical, text=f'critical-from-{key}')
        await portal.cancel_actor()
    assert f'critical-from-{key}' in capfd.readouterr().err


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_stack_dumps_asked_for_do_not_crash_a_child_booting(key):
    # enable_stack_on_sig installs a SIGUSR1 handler, which only a main
    # thread may do; a subint_forkserver actor does not run on one. It used
    # to crash the child in Actor._from_parent, just after the parent had
    # its portal.
    await _an_actor_answers_from_its_own_process(key, 'dumpable', enable_stack_on_sig=True)


async def _an_actor_answers_from_its_own_process(key: str, name: str, **nursery_options: object) -> None:
    with trio.fail_after(30):
        async with tractor.open_nursery(start_method=key, **nursery_options) as an:
            portal = await an.start_actor(name, enable_modules=[THIS])
            pid, _interp = await portal.run(where)
            assert pid != os.getpid()
            await portal.cancel_actor()


@pytest.mark.parametrize('key', KEYS)
@trio_parent_test(timeout=60)
async def test_a_child_s_process_name_is_upstream_s_proctitle(key):
    pytest.importorskip('setproctitle')
    async with tractor.open_nursery(start_method=key) as an:
        portal = await an.start_actor('titled', enable_modules=[THIS])
        pid, _interp = await portal.run(where)
        with open(f'/proc/{pid}/comm') as comm:
            # upstream's leak checks look for this marker in comm as well
            assert comm.read().strip() == '_subactor[titled'[:15]  # comm keeps 15 bytes
        await portal.cancel_actor()


@trio_parent_test(timeout=90)
async def test_a_subint_hosted_child_spawns_through_the_tree_s_forkserver():
    async with tractor.open_nursery(start_method='subint_forkserver') as an:
        portal = await an.start_actor('middle', enable_modules=[THIS])
        middle_pid, _ = await portal.run(where)
        _grandchild, parent = await portal.run(spawn_grandchild)
        assert parent not in (middle_pid, os.getpid())  # forked by the forkserver
        assert [p.comm for p in descendants() if p.pid == parent] == ['ts:forkserver']
        await portal.cancel_actor()


SCRIPT = '''
import trio, tractor, tractor_subint.upstream

async def from_main(x):  # defined in the script's __main__
    return x * 2

async def main():
    async with tractor.open_nursery(start_method='subint_forkserver') as an:
        portal = await an.start_actor('w', enable_modules=[__name__])
        print('RESULT', await portal.run(from_main, x=21), flush=True)
        await portal.cancel_actor()

if __name__ == '__main__':
    tractor_subint.upstream.register()
    trio.run(main)
'''


def test_a_main_script_s_function_runs_in_a_subint_hosted_child(tmp_path):
    script = tmp_path / 'script.py'
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert 'RESULT 42' in out.stdout, out.stderr[-2000:]


PTH = os.path.join(sysconfig.get_paths()['purelib'], 'tractor_subint_upstream.pth')


@pytest.mark.skipif(
    not os.path.exists(PTH), reason='the .pth hook comes with a regular (not editable) install',
)
@pytest.mark.parametrize(('method', 'registered'), [('subint_forkserver', True), ('trio', False)])
def test_the_pth_hook_registers_in_fresh_interpreters_that_will_use_our_keys(method, registered):
    probe = 'import tractor.spawn._spawn as s; print("subint_forkserver" in s._methods)'
    out = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=60,
        env={**os.environ, 'TRACTOR_SPAWN_METHOD': method},
    )
    assert out.stdout.strip() == str(registered), out.stderr


LOG_AT_MODULE_LEVEL = '''
import trio, tractor
tractor.log.get_console_log('warning')  # module level: re-run in the child as __mp_main__

async def one() -> int:
    return 1

async def main():
    async with tractor.open_nursery() as an:  # the key comes from TRACTOR_SPAWN_METHOD
        portal = await an.start_actor('one', enable_modules=[__name__])
        print('RESULT', await portal.run(one), flush=True)
        await portal.cancel_actor()

if __name__ == '__main__':
    trio.run(main)
'''


@pytest.mark.skipif(
    not os.path.exists(PTH), reason='the .pth hook comes with a regular (not editable) install',
)
@pytest.mark.parametrize('key', KEYS)
def test_a_script_run_through_the_pth_hook_is_quiet_and_works(key, tmp_path):
    """A script picks our key with TRACTOR_SPAWN_METHOD alone. Every
    interpreter runs the hook, subinterpreters of a subint_forkserver child
    included: it must neither fail nor print in any of them (on 3.13.0 it
    used to half-import tractor there, and this script then hung)."""
    script = tmp_path / 'script.py'
    script.write_text(LOG_AT_MODULE_LEVEL)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, 'TRACTOR_SPAWN_METHOD': key}, cwd=tmp_path,
    )
    assert 'RESULT 1' in out.stdout, out.stderr[-3000:]
    assert '.pth' not in out.stderr and 'tractor_subint' not in out.stderr, out.stderr[-3000:]
    assert out.returncode == 0


@pytest.mark.skipif(
    not os.path.exists(PTH), reason='the .pth hook comes with a regular (not editable) install',
)
def test_the_pth_hook_stays_quiet_where_it_cannot_register():
    # A tractor the adapter refuses (one patch point gone, via a
    # sitecustomize-free trick: the hook's own failure path) and a key of
    # ours: nothing printed, no half-imported tractor left behind.
    probe = textwrap.dedent('''
        import sys
        print('HALF', sorted(m for m in sys.modules if m.startswith('tractor.'))[:1])
    ''')
    out = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=60,
        env={**os.environ, 'TRACTOR_SPAWN_METHOD': 'subint_forkserver',
             'TRACTOR_SUBINT_TEST_HOOKS': 'pth_hook_register_fails=1'},
    )
    assert out.stderr == '' and out.stdout == 'HALF []\n', out
