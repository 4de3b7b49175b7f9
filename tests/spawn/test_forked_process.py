"""ForkedProcess: a trio.Process-shaped handle on a forked child."""
from __future__ import annotations

import os
import signal

import trio
import trio.testing

from _childio import fork_child
from tractor_subint.spawn._subint_forkserver import ForkedProcess, fork_from_worker_thread
from tractor_subint.testing import trio_parent_test


async def _blocked_child() -> tuple[ForkedProcess, int]:
    """A child that blocks until we close the returned fd (or signal it)."""
    hold_r, hold_w = os.pipe()
    pid = await fork_child(lambda: os.read(hold_r, 1), keep_fds=(hold_r,))
    os.close(hold_r)
    return ForkedProcess(pid), hold_w


@trio_parent_test(timeout=20)
async def test_wait_returns_when_child_exits():
    proc, hold_w = await _blocked_child()
    assert proc.poll() is None and proc.returncode is None
    os.close(hold_w)
    assert await proc.wait() == 0
    assert proc.poll() == 0 and proc.returncode == 0


@trio_parent_test(timeout=20)
async def test_cancelled_wait_leaves_child_running_and_unreaped():
    proc, hold_w = await _blocked_child()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(proc.wait)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert scope.cancelled_caught
    assert proc.poll() is None  # still alive, still ours to reap
    os.close(hold_w)
    assert await proc.wait() == 0


@trio_parent_test(timeout=20)
async def test_concurrent_waiters_all_see_the_exit():
    proc, hold_w = await _blocked_child()
    results = []

    async def waiter():
        results.append(await proc.wait())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        os.close(hold_w)
    assert results == [0, 0, 0]


@trio_parent_test(timeout=20)
async def test_terminate_kill_and_send_signal():
    for action, expected in [
        (lambda p: p.terminate(), -signal.SIGTERM),
        (lambda p: p.kill(), -signal.SIGKILL),
        (lambda p: p.send_signal(signal.SIGUSR1), -signal.SIGUSR1),
    ]:
        proc, hold_w = await _blocked_child()
        action(proc)
        assert await proc.wait() == expected
        assert proc.exit_status.signal == -expected
        os.close(hold_w)


@trio_parent_test(timeout=20)
async def test_signals_after_reap_are_harmless_noops():
    proc, hold_w = await _blocked_child()
    os.close(hold_w)
    await proc.wait()
    proc.terminate()
    proc.kill()
    proc.send_signal(signal.SIGINT)
    assert proc.returncode == 0


@trio_parent_test(timeout=20)
async def test_aclose_kills_and_reaps_when_cancelled():
    proc, hold_w = await _blocked_child()
    with trio.CancelScope() as scope:
        async with proc:
            scope.cancel()
    os.close(hold_w)
    assert proc.returncode == -signal.SIGKILL


def test_forked_process_without_trio_running_polls():
    hold_r, hold_w = os.pipe()
    pid = fork_from_worker_thread(lambda: os.read(hold_r, 1), keep_fds=(hold_r,))
    os.close(hold_r)
    proc = ForkedProcess(pid)
    assert proc.poll() is None
    os.close(hold_w)
    assert trio.run(proc.wait) == 0
