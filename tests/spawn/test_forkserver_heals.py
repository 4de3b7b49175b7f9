"""Issue 17: the tree's forkserver heals after it died, a Ctrl-C during its
start-up does not kill it half-started, and the private directory of a root
that was killed is swept by the next one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import trio
from test_forkserver import spawn

from tractor_subint.spawn._hooks import HOOKS_ENV
from tractor_subint.spawn.forkserver import ForkserverError, OnDemandForkserver
from tractor_subint.spawn.forkserver._owner import DIR_PREFIX, sweep_stale_dirs
from tractor_subint.testing import trio_parent_test


async def _started(fs: OnDemandForkserver, count: int) -> int:
    pid = await trio.to_thread.run_sync(fs.wait_started, count, 10.0)
    assert pid is not None, f'server #{count} did not start'
    return pid


async def _echo_once(fs: OnDemandForkserver) -> int:
    child, peer = await spawn(fs.address, 'echo', b'hi')
    async with child:
        assert '"payload": "hi"' in await peer.receive_line()
    await peer.aclose()
    return child.pid


@trio_parent_test(timeout=30)
async def test_a_killed_forkserver_is_replaced_and_the_spawn_in_flight_told_why(monkeypatch):
    monkeypatch.setenv(HOOKS_ENV, 'forkserver_ignore_requests=1')
    fs = OnDemandForkserver()
    try:
        async with trio.open_nursery() as nursery:
            failure: list[BaseException] = []

            async def in_flight() -> None:
                try:
                    await spawn(fs.address, 'echo', b'x')
                except ForkserverError as exc:
                    failure.append(exc)

            nursery.start_soon(in_flight)
            first = await _started(fs, 1)  # started by that request, which it leaves queued
            monkeypatch.delenv(HOOKS_ENV)  # the next server serves
            killed_at = time.monotonic()
            os.kill(first, signal.SIGKILL)
        elapsed = time.monotonic() - killed_at
        assert len(failure) == 1
        assert f"the tree's forkserver (pid {first}) died: signal 9" in str(failure[0])
        assert elapsed < 2.0, f'the spawn in flight failed {elapsed:.1f} s after the death'
        assert fs.last_death is not None and str(first) in fs.last_death
        # Healed: the next spawn starts a new server, which serves it.
        await _echo_once(fs)
        assert fs.starts == 2 and fs.pid not in (None, first)
        await _echo_once(fs)  # and keeps serving
        assert fs.starts == 2
    finally:
        fs.close()
    assert not os.path.exists(os.path.dirname(fs.address))


@trio_parent_test(timeout=30)
async def test_a_forkserver_that_exits_is_replaced_too():
    fs = OnDemandForkserver()
    try:
        await _echo_once(fs)
        first = fs.pid
        assert first is not None
        os.kill(first, signal.SIGTERM)
        # Once the owner has noticed (a request sent before would be told of
        # the death, as one in flight).
        assert await trio.to_thread.run_sync(fs.wait_deaths, 1, 10.0)
        await _echo_once(fs)
        assert fs.starts == 2 and fs.pid != first
        assert fs.last_death is not None and 'signal 15' in fs.last_death
    finally:
        fs.close()


# -- 8. Ctrl-C while the forkserver starts ----------------------------------------

STARTER = '''
import signal, socket
from tractor_subint.spawn.forkserver import OnDemandForkserver
fs = OnDemandForkserver()
try:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(fs.address)          # starts the server; the hook sends SIGINT at once
    pid = fs.wait_started(1, 10.0)
    print('started', pid, flush=True)
    signal.pause()
except KeyboardInterrupt:
    fs.close()
    print('closed', fs._server is None or fs._server[0].returncode, flush=True)
    raise
finally:
    fs.close()
'''


def test_ctrl_c_while_the_forkserver_starts_prints_only_the_interrupt(tmp_path):
    env = dict(os.environ, **{HOOKS_ENV: 'forkserver_sigint_at_exec=1'})
    # A session of its own: the SIGINT goes to this process group only.
    proc = subprocess.run(
        [sys.executable, '-c', STARTER], env=env, capture_output=True, text=True, timeout=60,
        start_new_session=True,
    )
    assert proc.returncode in (130, -signal.SIGINT), proc
    assert 'Fatal Python error' not in proc.stderr, proc.stderr
    assert 'init_import_site' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == 'KeyboardInterrupt', proc.stderr
    assert 'closed 0' in proc.stdout, proc.stdout  # the server stopped cleanly, not killed


# -- 10. a killed root's directory is swept ----------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def test_a_dead_owners_directory_is_swept_and_a_live_ones_kept():
    parent = tempfile.gettempdir()
    stale = tempfile.mkdtemp(prefix=f'{DIR_PREFIX}{_dead_pid()}-', dir=parent)
    live = tempfile.mkdtemp(prefix=f'{DIR_PREFIX}{os.getppid()}-', dir=parent)
    unrelated = tempfile.mkdtemp(prefix=f'{DIR_PREFIX}notapid', dir=parent)
    try:
        fs = OnDemandForkserver()  # sweeps on the way
        fs.close()
        assert not os.path.exists(stale)
        assert os.path.exists(live) and os.path.exists(unrelated)
        # (Other processes' stale directories may be swept too: not ours to count.)
        assert not {live, unrelated} & set(sweep_stale_dirs(parent))
    finally:
        for path in (stale, live, unrelated):
            if os.path.exists(path):
                os.rmdir(path)


ROOT = '''
import sys, trio
import tractor_subint as ts
from tractor_subint.spawn import current_tree

async def main():
    # No warm pool: killed, the root would orphan its idle members.
    async with ts.open_nursery(start_method='trio', warm_pool=0):
        print(current_tree().forkserver_address, flush=True)
        await trio.sleep_forever()

trio.run(main)
'''


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGKILL])
def test_a_root_killed_by_a_signal_leaves_nothing_after_the_next_run(signum, tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', ROOT], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, 'the root printed no address'
        os.kill(proc.pid, signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    # Its directory outlives it (nothing runs in a process killed so) ...
    assert os.path.exists(os.path.dirname(address))
    # ... until the next tree of this user opens.
    fs = OnDemandForkserver()
    fs.close()
    assert not os.path.exists(os.path.dirname(address))
