"""A ``host='main'`` child runs its entry on the process's main thread, and
still owns its signals and its lifeline (``spawn/_main_thread_host.py``)."""
from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from _childio import LineReader, socket_reader

from tractor_subint.spawn import PARENT_GONE_EXIT, ProcessHandle, SpawnRequest, get_backend
from tractor_subint.spawn._main_thread_host import MainThreadHost
from tractor_subint.spawn.forkserver import spawn_via_forkserver, start_forkserver
from tractor_subint.testing import trio_parent_test

ENTRIES = '_main_thread_entries'
# forked here (main_thread_forkserver), by a forkserver, or exec'd (trio)
KINDS = ['forked', 'forkserver', 'exec']


@asynccontextmanager
async def child(kind: str, entry: str) -> AsyncIterator[tuple[ProcessHandle, LineReader, socket.socket]]:
    """A ``host='main'`` child running ``entry``, started the ``kind`` way;
    killed and reaped on the way out."""
    forkserver = start_forkserver() if kind == 'forkserver' else None
    ours, theirs = socket.socketpair()
    request = SpawnRequest(name=f'main-{kind}', entry=f'{ENTRIES}:{entry}', ipc_fd=theirs.fileno())
    try:
        if forkserver is not None:
            handle: ProcessHandle = await spawn_via_forkserver(forkserver.address, request, host='main')
        else:
            key = 'main_thread_forkserver' if kind == 'forked' else 'trio'
            handle = await get_backend(key).spawn(request)
        theirs.close()
        peer = socket_reader(ours)
        try:
            yield handle, peer, ours
        finally:
            with trio.CancelScope(shield=True):
                handle.kill()
                await handle.wait()
                await peer.aclose()
    finally:
        theirs.close()
        ours.close()
        if forkserver is not None:
            forkserver.close()


@pytest.mark.parametrize('kind', KINDS)
@trio_parent_test(timeout=30)
async def test_the_entry_runs_on_the_main_thread(kind):
    async with child(kind, 'where') as (handle, peer, _):
        assert await peer.receive_line() == 'main-thread=True handler-installed=True'
        assert await handle.wait() == 0


@pytest.mark.parametrize('kind', KINDS)
@trio_parent_test(timeout=30)
async def test_a_handler_the_entry_installs_gets_the_signal_then_the_host_s_again(kind):
    """What a debugger does: shield its REPL from Ctrl-C, then hand SIGINT
    back; the next SIGINT cancels the entry as a forwarded signal."""
    async with child(kind, 'shield_then_cancel') as (handle, peer, _):
        assert await peer.receive_line() == 'shielding'
        handle.send_signal(signal.SIGINT)
        assert await peer.receive_line() == 'shielded, handler restored'
        handle.send_signal(signal.SIGINT)
        assert await peer.receive_line() == f'cancelled {int(signal.SIGINT)}'
        assert await handle.wait() == 128 + signal.SIGINT, handle.exit_status


@pytest.mark.parametrize('kind', KINDS)
@trio_parent_test(timeout=30)
async def test_a_second_signal_ends_a_main_thread_stuck_in_a_blocking_call(kind):
    async with child(kind, 'block_after_first_signal') as (handle, peer, _):
        assert await peer.receive_line() == 'ready'
        handle.send_signal(signal.SIGTERM)
        assert await peer.receive_line() == f'first-seen {int(signal.SIGTERM)}'
        handle.send_signal(signal.SIGTERM)
        assert await handle.wait() == -signal.SIGTERM, handle.exit_status


@pytest.mark.parametrize('kind', KINDS)
@trio_parent_test(timeout=30)
async def test_the_lifeline_ends_a_main_thread_that_never_lets_go(kind):
    """The main thread computes without a blocking call; the parent's end of
    the lifeline closes: the keeper thread still ends the process."""
    async with child(kind, 'spin') as (handle, peer, ours):
        assert await peer.receive_line() == 'ready'
        ours.shutdown(socket.SHUT_RDWR)
        with trio.fail_after(5):
            assert await handle.wait() == PARENT_GONE_EXIT, handle.exit_status


def test_cpython_s_main_thread_record_is_located_on_the_supported_pythons():
    """The repair the fork children rely on is armed (3.13 and 3.14 checked)."""
    from tractor_subint.spawn._main_tstate import locate_main_tstate

    assert locate_main_tstate() is not None


def test_a_keeper_that_runs_late_still_watches_the_lifeline_it_was_given(monkeypatch):
    """The keeper thread may first run after a short-lived entry closed its
    socket and the fd number went to another file: what it watches was
    registered before the entry ran, so it neither fails on the closed fd nor
    watches the new file; the host ends cleanly once the entry returns."""
    gate = threading.Event()
    errors: list[BaseException] = []
    keep = MainThreadHost._keep_lifeline

    def late_keeper(self: MainThreadHost, *args: object) -> None:
        gate.wait(10)
        try:
            keep(self, *args)  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)
            raise

    monkeypatch.setattr(MainThreadHost, '_keep_lifeline', late_keeper)
    ours, theirs = socket.socketpair()
    lifeline = theirs.fileno()
    with ours, MainThreadHost(lifeline_fd=lifeline, grace=5.0) as host:
        theirs.close()  # the entry ends its channel ...
        reused_r, reused_w = os.pipe()  # ... and the number is taken again
        try:
            assert lifeline in (reused_r, reused_w)
            gate.set()
        finally:
            os.close(reused_w)  # a hang-up the keeper must not take for the parent's
            os.close(reused_r)
    assert errors == []
    assert not host.parent_gone
    assert host.exit_code == 0
