"""The ProcessHandle contract, checked against every kind of handle.

Each kind starts the same child (``_handle_entries.hold``) its own way:
``forked`` (this process forks: ForkedProcess), ``forkserver`` (a forkserver
forks for us: ForkserverChild) and ``exec`` (the ``trio`` backend's fresh
process: ExecProcess). The tests drive it through the contract only.
"""
from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from _childio import LineReader, socket_reader

from tractor_subint.spawn import (
    ChildExit,
    ForkedProcess,
    ProcessHandle,
    SpawnRequest,
    fork_from_worker_thread,
    get_backend,
)
from tractor_subint.spawn.backends.trio import ExecProcess
from tractor_subint.spawn.forkserver import ForkserverChild, spawn_via_forkserver, start_forkserver
from tractor_subint.testing import trio_parent_test

KINDS = ['forked', 'forkserver', 'exec']
EXPECTED_TYPE = {'forked': ForkedProcess, 'forkserver': ForkserverChild, 'exec': ExecProcess}


class Child:
    """A held child: its handle, and the line channel to it."""

    def __init__(self, handle: ProcessHandle, peer: LineReader) -> None:
        self.handle = handle
        self.peer = peer

    async def command(self, line: str) -> None:
        await self.peer.stream.send_all(f'{line}\n'.encode())


@asynccontextmanager
async def held_child(kind: str) -> AsyncIterator[Child]:
    """Start a ``hold`` child the ``kind`` way; kill and reap it on the way out."""
    forkserver = start_forkserver() if kind == 'forkserver' else None
    ours, theirs = socket.socketpair()
    request = SpawnRequest(name=f'held-{kind}', entry='_handle_entries:hold', ipc_fd=theirs.fileno())
    try:
        if forkserver is not None:
            handle: ProcessHandle = await spawn_via_forkserver(forkserver.address, request, host='main')
        else:
            key = 'main_thread_forkserver' if kind == 'forked' else 'trio'
            handle = await get_backend(key).spawn(request)
        theirs.close()
        assert isinstance(handle, ProcessHandle) and isinstance(handle, EXPECTED_TYPE[kind])
        child = Child(handle, socket_reader(ours))
        try:
            assert await child.peer.receive_line() == f'ready {handle.pid}'
            yield child
        finally:
            with trio.CancelScope(shield=True):
                handle.kill()
                await handle.wait()
                await child.peer.aclose()
    finally:
        theirs.close()
        ours.close()
        if forkserver is not None:
            forkserver.close()


def _block_until_exit_is_observable(handle: ProcessHandle) -> int:
    """Without letting trio run: wait until the child has exited and
    ``handle.poll()`` can see it (a forkserver's status frame follows the
    exit by a moment). What a racing task's poll() does, forced."""
    pidfd = os.pidfd_open(handle.pid)
    try:
        select.select([pidfd], [], [], 10)  # until the child has exited
    finally:
        os.close(pidfd)
    for _ in range(10_000):
        returncode = handle.poll()
        if returncode is not None:
            return returncode
        select.select([], [], [], 0.001)  # the status frame is on its way
    raise AssertionError(f'{handle!r}: exited, but poll() never saw it')


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@trio_parent_test(timeout=30)
async def test_wait_returns_the_exit_code(kind):
    async with held_child(kind) as child:
        proc = child.handle
        assert proc.poll() is None and proc.returncode is None and proc.exit_status is None
        await child.command('exit 3')
        assert await proc.wait() == 3
        assert proc.poll() == 3 and proc.returncode == 3
        assert proc.exit_status.returncode == 3 and proc.exit_status.pid == proc.pid
        assert proc.child_exception is None and not proc.status_lost


@trio_parent_test(timeout=30)
async def test_wait_returns_when_another_task_polls_the_exit(kind):
    """The waiter is parked on the handle's fd when another task's poll()
    finds the exit and releases that fd: the waiter must still return."""
    async with held_child(kind) as child:
        proc = child.handle
        results: list[int] = []

        async def waiter() -> None:
            results.append(await proc.wait())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()  # parked on the fd
            await child.command('exit 0')
            assert _block_until_exit_is_observable(proc) == 0  # "another task" polled
        assert results == [0]


@trio_parent_test(timeout=30)
async def test_wait_returns_while_other_tasks_keep_polling(kind):
    async with held_child(kind) as child:
        proc = child.handle
        polls: list[int | None] = []

        async def keep_polling() -> None:
            while (returncode := proc.poll()) is None:
                await trio.lowlevel.checkpoint()
            polls.append(returncode)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_polling)
            nursery.start_soon(keep_polling)
            await child.command('exit 5')
            assert await proc.wait() == 5
        assert polls == [5, 5]


@trio_parent_test(timeout=30)
async def test_concurrent_waiters_all_see_the_exit(kind):
    async with held_child(kind) as child:
        results: list[int] = []

        async def waiter() -> None:
            results.append(await child.handle.wait())

        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await child.command('exit 0')
        assert results == [0, 0]


@trio_parent_test(timeout=30)
async def test_cancelled_wait_leaves_the_child_running(kind):
    async with held_child(kind) as child:
        proc = child.handle
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc.wait)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
        assert scope.cancelled_caught
        assert proc.poll() is None and proc.returncode is None  # still running, still usable
        await child.command('exit 0')
        assert await proc.wait() == 0


@pytest.mark.parametrize(('action', 'expected'), [
    # A forwarded SIGTERM ends the entry; the host exits 128 + signum.
    (lambda p: p.terminate(), 128 + signal.SIGTERM),
    (lambda p: p.kill(), -signal.SIGKILL),
    # Neither handled nor forwarded: the default action, death by signal.
    (lambda p: p.send_signal(signal.SIGUSR1), -signal.SIGUSR1),
], ids=['terminate', 'kill', 'send_signal'])
@trio_parent_test(timeout=30)
async def test_signals_reach_the_child(kind, action, expected):
    async with held_child(kind) as child:
        action(child.handle)
        assert await child.handle.wait() == expected
        status = child.handle.exit_status
        assert (status.signal == -expected) if expected < 0 else (status.signal is None)


@trio_parent_test(timeout=30)
async def test_signals_after_exit_are_harmless(kind):
    async with held_child(kind) as child:
        proc = child.handle
        await child.command('exit 0')
        await proc.wait()
        proc.terminate()
        proc.kill()
        proc.send_signal(signal.SIGINT)
        assert proc.returncode == 0 and proc.poll() == 0


@trio_parent_test(timeout=30)
async def test_exception_in_the_entry_reaches_the_handle(kind):
    async with held_child(kind) as child:
        await child.command('raise bad news')
        assert await child.handle.wait() == ChildExit.TARGET_RAISED
        exc = child.handle.child_exception
        assert exc is not None
        assert exc.type_name == 'builtins.ValueError' and exc.message == 'bad news'
        assert 'in hold' in exc.traceback
        assert 'bad news' in child.handle.exit_status.describe()


@trio_parent_test(timeout=30)
async def test_aclose_kills_and_reaps_when_cancelled(kind):
    async with held_child(kind) as child:
        proc = child.handle
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proc.aclose)
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
        assert proc.returncode == -signal.SIGKILL


@trio_parent_test(timeout=30)
async def test_aclose_waits_for_a_child_that_exits(kind):
    async with held_child(kind) as child:
        await child.command('exit 4')
        async with child.handle as proc:
            pass
        assert proc.returncode == 4


# --- ForkedProcess from a bare pid ------------------------------------------------

def test_forked_process_from_a_bare_pid_polls_without_trio():
    hold_r, hold_w = os.pipe()
    pid = fork_from_worker_thread(lambda: os.read(hold_r, 1), keep_fds=(hold_r,))
    os.close(hold_r)
    proc = ForkedProcess(pid)  # claims the report pipe fork_from_worker_thread kept
    assert proc.poll() is None
    os.close(hold_w)
    assert trio.run(proc.wait) == 0


def test_a_child_reaped_behind_our_back_is_a_lost_status():
    pid = fork_from_worker_thread(lambda: None)
    proc = ForkedProcess(pid)
    os.waitpid(pid, 0)  # someone else (a blanket waitpid) reaps it
    assert proc.poll() == 255
    assert proc.status_lost
    assert 'exit status lost' in proc.exit_status.describe()
