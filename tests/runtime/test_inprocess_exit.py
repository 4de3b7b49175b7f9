"""Issue 17, item 9: an in-process (``subint``) actor that cannot end does
not keep its process from exiting: the kill ladder gives it up after a
stated grace, and at exit the process ends (``os._exit``) once the same
grace has passed, naming what held it; ``inf`` opts out."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from _rt_helpers import ScriptProcess, script_env

from tractor_subint.spawn._unended import GRACE_ENV, UNENDED_EXIT
from tractor_subint.testing import trio_parent_test

pytestmark = pytest.mark.usefixtures('only_subint')


@pytest.fixture
def only_subint(start_method):
    if start_method != 'subint':
        pytest.skip('in-process actors: the scripts pick the subint backend themselves')


@trio_parent_test(timeout=40)
async def test_a_left_running_thread_ends_the_process_after_the_grace(start_method, tmp_path, gate):
    env = script_env(start_method, **{GRACE_ENV: '0.5'})
    async with ScriptProcess.running('unended_actor.py', env, tmp_path, 'thread', gate.path,
                                     timeout=30) as script:
        assert await script.read_until('LEFT') == 'left-running'
        await script.read_until('MAIN_DONE')
        done = time.monotonic()
        rc = await script.proc.wait()
        elapsed = time.monotonic() - done
    assert rc == UNENDED_EXIT, script.describe()
    stderr = script.stderr()
    assert "actor 'stuck'" in stderr and "'left-running'" in stderr, stderr
    assert f'os._exit({UNENDED_EXIT})' in stderr and f'{GRACE_ENV}=inf' in stderr
    assert elapsed < 5, f'{elapsed:.1f} s from the end of main to the exit'


@trio_parent_test(timeout=40)
async def test_an_actor_blocked_in_a_call_is_given_up_then_ends_the_process(start_method, tmp_path, gate):
    env = script_env(start_method, **{GRACE_ENV: '0.5'})
    async with ScriptProcess.running('unended_actor.py', env, tmp_path, 'blocked', gate.path,
                                     timeout=30) as script:
        await script.read_until('GAVE_UP')
        error = await script.read_until('NURSERY_ERROR')
        await script.read_until('MAIN_DONE')
        rc = await script.proc.wait()
    assert "actor 'stuck' could not be ended: it runs in this process" in error
    assert 'blocked in its call actor_targets.blocking_sleep' in error
    assert rc == UNENDED_EXIT, script.describe()
    assert "in-process actor 'stuck' (thread 'subint-actor[stuck]') is blocked in its call" in (
        script.stderr()
    )


@trio_parent_test(timeout=40)
async def test_an_infinite_grace_waits_for_the_thread_as_a_process_would(start_method, tmp_path, gate):
    env = script_env(start_method, **{GRACE_ENV: 'inf'})
    async with ScriptProcess.running('unended_actor.py', env, tmp_path, 'thread', gate.path,
                                     timeout=30) as script:
        await script.read_until('MAIN_DONE')
        assert script.proc.returncode is None  # waiting for the thread, as asked
        gate.release()
        rc = await script.proc.wait()
    assert rc == 0, script.describe()
    assert 'cannot exit' not in script.stderr()


STUCK_TEST = '''
import hostile_targets, tractor_subint as ts
from tractor_subint.testing import trio_parent_test

@trio_parent_test(timeout=20)
async def test_leaves_a_thread(start_method):
    async with ts.open_nursery(start_method='subint') as an:
        portal = await an.start_actor('leaky', enable_modules=['hostile_targets'])
        await portal.run(hostile_targets.leave_thread_running, fifo={gate!r})
        await portal.cancel_actor()
'''


def test_a_pytest_session_with_an_unended_actor_exits_after_its_summary(start_method, tmp_path, gate):
    test_file = tmp_path / 'test_stuck.py'
    test_file.write_text(STUCK_TEST.format(gate=gate.path))
    env = script_env(start_method, **{GRACE_ENV: '0.5'})
    env['PYTHONPATH'] = str(pathlib_tests_dir())
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '-p', 'tractor_subint.testing.pytest_plugin', str(test_file), '--spawn-backend=subint'],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    # The test itself fails (it leaves an actor running: the plugin says so);
    # the point is that the session reports, then ends.
    assert ' in ' in proc.stdout.strip().splitlines()[-1], proc.stdout + proc.stderr
    assert proc.returncode == UNENDED_EXIT, proc.stdout + proc.stderr
    assert "actor 'leaky'" in proc.stderr and "'left-running'" in proc.stderr


def pathlib_tests_dir() -> str:
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[1])
