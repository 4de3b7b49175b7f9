"""Behaviour that needs a root process of its own: ``__main__`` targets,
signals to the root, and scenarios that could hang the root (run apart so a
hang fails one test instead of the session).

Every script is run with ``sys.executable`` under the session's backend
(``$TRACTOR_SUBINT_SPAWN_METHOD`` set explicitly from ``start_method``), with
its actors on /dev/null so none of them holds our stdout pipe.
"""
from __future__ import annotations

import os
import signal

import pytest
import trio
from _rt_helpers import (
    ScriptProcess,
    kill_quietly,
    reap_zombies,
    runs_in_this_process,
    script_env,
    wait_pids_gone,
)

from tractor_subint.runtime import CANCEL_ACK_TIMEOUT, TERMINATE_TIMEOUT
from tractor_subint.testing import trio_parent_test

LIFELINE_BOUND = 2.0
"""Children of a dead parent exit on their own within this (documented)."""
SIGINT_BOUND = 1.0
"""A root running a tree exits this soon after SIGINT (documented)."""
SIGINT_SLACK = 2.0
"""Extra allowance for a slow CI machine; the measured time is reported."""


async def _cleanup(script: ScriptProcess, pids: list[int]) -> None:
    """Whatever happened, leave nothing behind: kill the script, then give its
    actors their lifeline to go, then kill what is left."""
    await script.aclose()
    with trio.CancelScope(shield=True):
        if await wait_pids_gone(pids, timeout=LIFELINE_BOUND + 1):
            kill_quietly(pids)
        await reap_zombies(pids, timeout=2)


@trio_parent_test(timeout=30)
async def test_main_defined_targets(start_method, tmp_path):
    script = await ScriptProcess.start('main_target.py', script_env(start_method), tmp_path)
    try:
        with trio.fail_after(20):
            backend = await script.read_until('BACKEND')
            run = await script.read_json_after('RUN ')
            run_in_actor = await script.read_json_after('RUN_IN_ACTOR')
            done = await script.read_json_after('DONE')
            await script.read_rest()
            rc = await script.proc.wait()
    finally:
        await _cleanup(script, [])
    assert rc == 0, script.describe()
    assert backend == start_method
    assert run['text'] == 'hello main'
    assert run['actor'] == 'mainer'
    assert run_in_actor['value'] == 49
    assert run_in_actor['actor'] == 'square'
    pids = {done['root_pid'], run['pid'], run_in_actor['pid']}
    if runs_in_this_process(start_method):
        assert pids == {script.proc.pid}, 'every actor in the root\'s process'
    else:
        assert len(pids) == 3, 'each actor is its own process'


async def _start_tree(start_method: str, tmp_path, *args: str) -> tuple[ScriptProcess, dict]:
    script = await ScriptProcess.start('tree_then_wait.py', script_env(start_method), tmp_path, *args)
    try:
        with trio.fail_after(20):
            ready = await script.read_json_after('READY')
    except BaseException:
        await _cleanup(script, [])
        raise
    return script, ready


@pytest.mark.needs_own_process(reason='an actor is SIGKILLed on its own')
@trio_parent_test(timeout=30)
async def test_sigkill_of_parent_ends_a_blocked_child(start_method, tmp_path):
    """The grandchild sits in a blocking call, so no cancel can reach it, and
    its parent is SIGKILLed, so no kill ladder will: only the lifeline poller
    on its host's main thread can end it."""
    script, ready = await _start_tree(start_method, tmp_path, '--blocking-leaf')
    child, grandchild = ready['actors']
    pids = sorted(set(ready['actors']) | set(ready['descendants']))
    try:
        os.kill(child, signal.SIGKILL)
        killed_at = trio.current_time()
        survivors = await wait_pids_gone([grandchild], timeout=LIFELINE_BOUND)
        elapsed = trio.current_time() - killed_at
        assert survivors == [], f'blocked grandchild still alive {elapsed:.2f}s after its parent died'
        # The root sees its child die on its own: a failure, not a hang.
        with trio.fail_after(10):
            assert await script.proc.wait() != 0
    finally:
        await _cleanup(script, pids)


@trio_parent_test(timeout=30)
async def test_sigkill_of_root_leaves_no_orphan(start_method, tmp_path):
    script, ready = await _start_tree(start_method, tmp_path)
    pids = sorted(set(ready['actors']) | set(ready['descendants']))
    try:
        assert ready['root'] == script.proc.pid
        assert len(ready['actors']) == 2
        if runs_in_this_process(start_method):
            assert ready['actors'] == [script.proc.pid] * 2 and ready['descendants'] == []
        else:
            assert set(ready['actors']) <= set(ready['descendants'])
        os.kill(script.proc.pid, signal.SIGKILL)
        killed_at = trio.current_time()
        await script.proc.wait()
        survivors = await wait_pids_gone(pids, timeout=LIFELINE_BOUND)
        elapsed = trio.current_time() - killed_at
        assert survivors == [], (
            f'still alive {elapsed:.2f}s after the root was SIGKILLed: {survivors} '
            f'(tree: {ready})'
        )
    finally:
        await _cleanup(script, pids)


@pytest.mark.parametrize('target', ['root', 'group'])
@trio_parent_test(timeout=30)
async def test_sigint_to_root_exits_the_whole_tree(start_method, tmp_path, target):
    """``target='root'``: the root alone gets SIGINT and cancels the tree.
    ``target='group'``: Ctrl-C in a terminal, every process of the tree gets
    it at once; the children's exits must not turn into errors of the root."""
    script, ready = await _start_tree(start_method, tmp_path)
    pids = sorted(set(ready['actors']) | set(ready['descendants']))
    try:
        if target == 'group':
            os.killpg(script.proc.pid, signal.SIGINT)
        else:
            os.kill(script.proc.pid, signal.SIGINT)
        sent_at = trio.current_time()
        with trio.move_on_after(SIGINT_BOUND + SIGINT_SLACK):
            rest = await script.read_rest()
            rc = await script.proc.wait()
        elapsed = trio.current_time() - sent_at
        assert script.proc.returncode is not None, (
            f'root still running {elapsed:.2f}s after SIGINT\n{script.describe()}'
        )
        survivors = await wait_pids_gone(pids, timeout=0.2)
        assert rc == 130, f'rc={rc} after {elapsed:.2f}s\n{script.describe()}'
        assert any(line.startswith('INTERRUPTED') for line in rest), script.describe()
        assert elapsed < SIGINT_BOUND + SIGINT_SLACK, (
            f'the root took {elapsed:.2f}s to exit after SIGINT '
            f'(documented: {SIGINT_BOUND}s; allowed with CI slack: {SIGINT_BOUND + SIGINT_SLACK}s)'
        )
        assert survivors == [], f'left behind after the root exited: {survivors}'
    finally:
        await _cleanup(script, pids)


@trio_parent_test(timeout=30)
async def test_ctrl_c_inside_the_runtime_s_own_nurseries_is_a_plain_interrupt(start_method, tmp_path, fifo):
    """Ctrl-C (to the whole process group) while the root is inside
    ``an.cancel()``, waiting on an actor stuck in a blocking call: trio
    raises it inside the runtime's internal nurseries, which must not hand
    it back wrapped in a group (status 1) instead of status 130."""
    # No signal ends an in-process actor's blocking call: the root exits once
    # it returns (the documented bound), so it is short there.
    blocking = 3 if runs_in_this_process(start_method) else 30
    script = await ScriptProcess.start(
        'interrupt_while_cancelling.py', script_env(start_method), tmp_path, fifo.path, str(blocking),
    )
    pids: list[int] = []
    bound = SIGINT_BOUND + CANCEL_ACK_TIMEOUT + TERMINATE_TIMEOUT + SIGINT_SLACK
    try:
        with trio.fail_after(20):
            pids = (await script.read_json_after('CANCELLING'))['actors']
        os.killpg(script.proc.pid, signal.SIGINT)
        with trio.move_on_after(max(bound, blocking + SIGINT_SLACK)):
            rest = await script.read_rest()
            rc = await script.proc.wait()
        assert script.proc.returncode is not None, f'root still running\n{script.describe()}'
        assert rc == 130, f'rc={rc}\n{script.describe()}'
        assert rest == ['INTERRUPTED'], script.describe()
        assert 'Group' not in script.stderr(), script.describe()
        assert await wait_pids_gone(pids, timeout=0.5) == []
    finally:
        await _cleanup(script, pids)


@pytest.mark.parametrize('mode', ['cancel_scope', 'move_on_after'])
@trio_parent_test(timeout=30)
async def test_cancelling_enclosing_scope_cancels_the_tree(start_method, tmp_path, mode):
    """Cancelling a trio scope around an actor nursery of sleepers ends the
    block promptly with every child gone. Run in a script of its own: if the
    root hangs, this test fails (and kills it) instead of stalling pytest."""
    script = await ScriptProcess.start(
        'cancel_scope_tree.py', script_env(start_method), tmp_path, mode, str(tmp_path),
    )
    pids: list[int] = []
    try:
        with trio.fail_after(20):
            pids = (await script.read_json_after('READY'))['pids']
        assert len(pids) == 4
        with trio.move_on_after(CANCEL_ACK_TIMEOUT + 5) as waited:
            done = await script.read_json_after('DONE')
            rc = await script.proc.wait()
        if waited.cancelled_caught:
            alive = await wait_pids_gone(pids, timeout=0, reap=False)
            pytest.fail(
                f'{mode}: the actor nursery did not exit {CANCEL_ACK_TIMEOUT + 5}s after '
                f'its enclosing scope was cancelled (hang); children still alive: {alive}\n'
                + script.describe()
            )
        assert rc == 0, script.describe()
        assert done['error'] is None, done
        assert done['cancelled_caught'] is True, done
        assert done['elapsed'] < CANCEL_ACK_TIMEOUT + 1.0, done
        assert await wait_pids_gone(pids, timeout=0.5) == []
    finally:
        await _cleanup(script, pids)
