"""SIGINT/SIGTERM to a subint-hosted child end it cleanly, parent alive or not."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial

import pytest
import trio
from _childio import ChildPipe, fork_child
from _subint_children import SLEEPER_BOOTSTRAP, TESTS_DIR, host_sleeper

from tractor_subint.spawn._subint_forkserver import (
    SIGNAL_FD_GLOBAL,
    ForkedProcess,
    SignalForwarder,
    run_subint_here,
    run_subint_with_signal_forwarding,
)
from tractor_subint.testing import trio_parent_test

SIGNALS = pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)


async def _signal_and_check_clean_exit(proc: ForkedProcess, pipe: ChildPipe, sig: int) -> None:
    assert await pipe.receive_line() == 'ready'
    proc.send_signal(sig)
    assert await pipe.receive_line() == f'cleanup-ran cancelled-by={sig}'
    assert await proc.wait() == 128 + sig, proc.exit_status
    assert proc.child_exception is None


@SIGNALS
@trio_parent_test(timeout=30)
async def test_signal_to_subint_child_with_live_parent(sig):
    pipe = ChildPipe()
    pid = await fork_child(lambda: host_sleeper(pipe.write_fd), keep_fds=pipe.keep_fds)
    pipe.parent_side()
    async with ForkedProcess(pid) as proc:
        await _signal_and_check_clean_exit(proc, pipe, sig)
    await pipe.aclose()


@SIGNALS
@trio_parent_test(timeout=30)
async def test_signal_to_orphaned_subint_child(sig):
    """The parent is SIGKILLed first; the orphan must still exit cleanly.

    This session is a subreaper (the pytest plugin), so the orphan is re-parented to
    us and we can read its real exit status.
    """
    pipe = ChildPipe()
    harness = await trio.lowlevel.open_process(
        [sys.executable, os.path.join(TESTS_DIR, '_orphan_harness.py'), str(pipe.write_fd)],
        pass_fds=pipe.keep_fds,
        stdout=subprocess.PIPE,
    )
    pipe.parent_side()
    try:
        pid_line = b''
        while not pid_line.endswith(b'\n'):
            chunk = await harness.stdout.receive_some()
            assert chunk, f'harness exited early: {await harness.wait()}'
            pid_line += chunk
        orphan = ForkedProcess(int(pid_line))
    finally:
        harness.kill()
        await harness.wait()
        await harness.stdout.aclose()
    assert os.getppid() != harness.pid  # sanity: the harness was not us
    assert _parent_of(orphan.pid) == os.getpid(), 'orphan was not re-parented to us'
    try:
        await _signal_and_check_clean_exit(orphan, pipe, sig)
    finally:
        await orphan.aclose()
        await pipe.aclose()


def _parent_of(pid: int) -> int:
    with open(f'/proc/{pid}/stat') as f:
        stat = f.read()
    return int(stat[stat.rindex(')') + 2:].split()[1])


@trio_parent_test(timeout=30)
async def test_second_signal_forces_exit_when_graceful_cancel_is_stuck():
    # The hosted trio acknowledges the first SIGTERM but then refuses to
    # finish (a shielded wait); the repeated SIGTERM must end the child.
    bootstrap = (
        'import os, trio\n'
        'from tractor_subint.spawn._subint_forkserver import cancel_on_forwarded_signal\n'
        'async def main():\n'
        '    async with cancel_on_forwarded_signal() as seen:\n'
        '        with trio.CancelScope(shield=True):\n'
        '            os.write(report_fd, b"ready\\n")\n'
        '            await seen.wait()\n'
        '            os.write(report_fd, f"first-seen {seen.signum}\\n".encode())\n'
        '            await trio.sleep_forever()\n'
        'trio.run(main)\n'
    )
    pipe = ChildPipe()

    def child():
        raise SystemExit(run_subint_with_signal_forwarding(
            bootstrap, shared={'report_fd': pipe.write_fd}
        ))

    pid = await fork_child(child, keep_fds=pipe.keep_fds)
    pipe.parent_side()
    async with ForkedProcess(pid) as proc:
        assert await pipe.receive_line() == 'ready'
        proc.send_signal(signal.SIGTERM)
        assert await pipe.receive_line() == f'first-seen {signal.SIGTERM}'
        proc.send_signal(signal.SIGTERM)
    await pipe.aclose()
    assert proc.returncode == -signal.SIGTERM, proc.exit_status


# The hosted code has the signal delivered to its own (worker) thread.
SELF_SIGNALLING_BOOTSTRAP = SLEEPER_BOOTSTRAP.replace(
    "os.write(report_fd, b'ready\\n')",
    "os.write(report_fd, b'ready\\n')\n"
    "        import signal, threading\n"
    "        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)",
)


@trio_parent_test(timeout=15)
async def test_signal_delivered_to_worker_thread_is_not_lost():
    """Force the bad interleaving: the kernel hands a process-directed signal
    to any thread that does not block it, here the hosted code's own thread,
    while the main thread sleeps. Python would run its handler only once the
    main thread next wakes up, i.e. never; the forwarder must not depend on
    that.
    """
    assert SELF_SIGNALLING_BOOTSTRAP != SLEEPER_BOOTSTRAP
    pipe = ChildPipe()

    def child():
        with SignalForwarder() as forwarder:
            forwarder.run_in_worker_thread(
                partial(run_subint_here, SELF_SIGNALLING_BOOTSTRAP, shared={
                    'report_fd': pipe.write_fd, SIGNAL_FD_GLOBAL: forwarder.read_fd,
                }),
                thread_name='hosted',
            )
        raise SystemExit(forwarder.exit_code)

    pid = await fork_child(child, keep_fds=pipe.keep_fds)
    pipe.parent_side()
    async with ForkedProcess(pid) as proc:
        assert await pipe.receive_line() == 'ready'
        assert await pipe.receive_line() == f'cleanup-ran cancelled-by={signal.SIGTERM}'
    await pipe.aclose()
    assert proc.returncode == 128 + signal.SIGTERM, proc.exit_status
