"""fork_from_worker_thread(): the fork, its guard, the child prelude."""
from __future__ import annotations

import _interpreters
import gc
import json
import os
import signal
import socket
import sys
import threading
import warnings

import pytest
import trio
from _childio import ChildPipe, fork_child, send_line

from tractor_subint.runtime._channel import Channel
from tractor_subint.runtime._codec import get_codec
from tractor_subint.spawn._forked_process import fork_process
from tractor_subint.spawn._subint_forkserver import (
    ChildExit,
    ForkedProcess,
    SubintExecError,
    fork_from_worker_thread,
    run_subint_in_worker_thread,
    wait_child,
)
from tractor_subint.spawn.backends._forked import on_forker
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=20)
async def test_fork_while_trio_runs_child_thread_is_main():
    pipe = ChildPipe()

    def child():
        me = threading.current_thread()
        send_line(pipe.write_fd, json.dumps({
            'is_main': me is threading.main_thread(),
            'name': me.name,
            'threads': threading.active_count(),
            'gettid_is_pid': threading.get_native_id() == os.getpid(),
        }))

    pid = await fork_child(child, thread_name='test-forker', keep_fds=pipe.keep_fds)
    pipe.parent_side()
    report = json.loads(await pipe.receive_line())
    async with ForkedProcess(pid) as proc:
        pass
    await pipe.aclose()

    assert proc.returncode == 0, proc.exit_status
    assert report == {
        'is_main': True, 'name': 'test-forker', 'threads': 1, 'gettid_is_pid': True,
    }


@trio_parent_test(timeout=30)
async def test_forks_from_trio_start_no_thread_once_the_forker_runs():
    # A thread's start makes its starter wait for the GIL, which forks hold:
    # spawns at once must not start a trio worker and a forking thread each.
    first = await on_forker(fork_process)  # starts the forker if none runs yet
    assert await first.wait() == 0
    before = set(threading.enumerate())
    procs: list[ForkedProcess] = []

    async def fork_one() -> None:
        procs.append(await on_forker(fork_process))

    async with trio.open_nursery() as tn:
        for _ in range(4):
            tn.start_soon(fork_one)
    assert [await proc.wait() for proc in procs] == [0, 0, 0, 0]
    assert set(threading.enumerate()) == before
    assert [t.name for t in before if t.name == 'tractor-subint-forker'] == ['tractor-subint-forker']


def _raise_boom():
    raise ValueError('boom 42')


@trio_parent_test(timeout=20)
async def test_child_target_raising_reaches_parent_with_traceback():
    pid = await fork_child(_raise_boom)
    ok, status = await trio.to_thread.run_sync(wait_child, pid)

    assert not ok
    assert status.startswith(f'rc={ChildExit.TARGET_RAISED} (child target raised)')
    assert 'ValueError: boom 42' in status
    assert 'in _raise_boom' in status  # the child's own traceback, not ours


@trio_parent_test(timeout=20)
async def test_forked_process_exposes_child_exception():
    async with ForkedProcess(await fork_child(_raise_boom)) as proc:
        pass
    assert proc.returncode == ChildExit.TARGET_RAISED
    assert proc.child_exception is not None
    assert proc.child_exception.type_name == 'builtins.ValueError'
    assert proc.child_exception.message == 'boom 42'
    assert 'in _raise_boom' in proc.child_exception.traceback


@pytest.mark.parametrize(('code', 'expected_rc'), [(None, 0), (5, 5), ('msg', 1)])
@trio_parent_test(timeout=20)
async def test_target_sys_exit_sets_exit_code(code, expected_rc):
    def child():
        raise SystemExit(code)

    ok, status = await trio.to_thread.run_sync(wait_child, await fork_child(child))
    assert ok == (expected_rc == 0)
    assert status.startswith(f'rc={expected_rc}')


@trio_parent_test(timeout=20)
async def test_wait_child_expect_failure_inverts_ok():
    pid = await fork_child(lambda: os.kill(os.getpid(), signal.SIGKILL))
    ok, status = await trio.to_thread.run_sync(
        lambda: wait_child(pid, expect_exit_ok=False)
    )
    assert ok
    assert status == 'signal=SIGKILL (killed by signal 9)'


def _pipe_id(fd: int) -> str:
    return f'pipe:[{os.fstat(fd).st_ino}]'


@trio_parent_test(timeout=20)
async def test_prelude_closes_inherited_fds_and_keeps_requested():
    report_pipe = ChildPipe()
    kept_r, kept_w = os.pipe()
    stray_r, stray_w = os.pipe()  # the child must not keep stray_w open
    hold_r, hold_w = os.pipe()  # the child lives until we close hold_w

    def child():
        fds = {}
        for fd in os.listdir('/proc/self/fd'):
            try:
                fds[int(fd)] = os.readlink(f'/proc/self/fd/{fd}')
            except FileNotFoundError:
                pass  # the directory fd used for the listing, now closed
        send_line(report_pipe.write_fd, json.dumps(fds))
        os.write(kept_w, b'kept-works')
        os.read(hold_r, 1)

    pid = await fork_child(child, keep_fds=(*report_pipe.keep_fds, kept_w, hold_r))
    proc = ForkedProcess(pid)
    report_pipe.parent_side()
    stray_pipe = _pipe_id(stray_r)
    for fd in (kept_w, stray_w, hold_r):
        os.close(fd)
    try:
        child_fds = {
            int(fd): target
            for fd, target in json.loads(await report_pipe.receive_line()).items()
        }
        # Behaviour, not just numbers: with the child alive, the stray pipe
        # reads EOF, i.e. the child holds no copy of its write end.
        assert await trio.to_thread.run_sync(os.read, stray_r, 1) == b''
        assert os.read(kept_r, 64) == b'kept-works'
    finally:
        os.close(hold_w)
        await proc.wait()
        await report_pipe.aclose()
        os.close(stray_r)
        os.close(kept_r)

    assert proc.returncode == 0, proc.exit_status
    assert {0, 1, 2, report_pipe.write_fd, kept_w, hold_r} <= child_fds.keys()
    assert stray_pipe not in child_fds.values()
    # Besides those, the child holds its own exception-report pipe, and every
    # other number is a /dev/null tombstone.
    extra = child_fds.keys() - {0, 1, 2, report_pipe.write_fd, kept_w, hold_r}
    own = [fd for fd in extra if child_fds[fd] != os.devnull]
    assert len(own) == 1 and child_fds[own[0]].startswith('pipe:')
    assert stray_w in extra and child_fds[stray_w] == os.devnull


@trio_parent_test(timeout=20)
async def test_child_never_reuses_a_number_an_inherited_object_holds():
    """A parent's file object (a logging handler's, say) survives the fork
    naming its fd number. The child's new fds must never get that number, or
    the object's writes land in them: seen as a pytest log line inside an
    actor's IPC stream (ai/conc-anal/inherited_fd_numbers_reused.md)."""
    r, w = os.pipe()
    stale = open(w, 'w', buffering=1)  # noqa: SIM115 (closed below)

    def child() -> None:
        # New fds take the lowest free number: allocate past the stale one,
        # so it would have been handed out here had the prelude freed it.
        fresh: list[int] = []
        while not fresh or fresh[-1] < w:
            fresh.append(os.dup(0))
        if w in fresh:
            sys.exit(STALE_FD_REUSED)
        stale.write('a stale object writing after the fork\n')  # into nothing

    try:
        pid = await fork_child(child)
    finally:
        stale.close()
    ok, status = await trio.to_thread.run_sync(wait_child, pid)
    # EOF, no data: the child's write did not reach the pipe, and the child
    # held no copy of its write end.
    received = await trio.to_thread.run_sync(os.read, r, 64)
    os.close(r)
    assert ok, status
    assert received == b''


async def json_from_child(report, **fork_kwargs):
    """Fork a child that sends ``report()`` as one JSON line; reap it; the
    value."""
    pipe = ChildPipe()
    pid = await fork_child(
        lambda: send_line(pipe.write_fd, json.dumps(report())), keep_fds=pipe.keep_fds,
        **fork_kwargs,
    )
    pipe.parent_side()
    value = json.loads(await pipe.receive_line())
    async with ForkedProcess(pid):
        pass
    await pipe.aclose()
    return value


@trio_parent_test(timeout=20)
async def test_prelude_resets_signal_state_inherited_from_trio():
    # trio.run has installed its SIGINT handler and a wakeup fd in this
    # process; the child must not inherit either.
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler

    def child():
        return {
            'sigint_default': signal.getsignal(signal.SIGINT) is signal.default_int_handler,
            'wakeup_fd': signal.set_wakeup_fd(-1),
            'blocked': sorted(signal.pthread_sigmask(signal.SIG_BLOCK, ())),
        }

    report = await json_from_child(child)
    assert report == {'sigint_default': True, 'wakeup_fd': -1, 'blocked': []}


@trio_parent_test(timeout=20)
async def test_prelude_resets_every_python_handler_and_keeps_ignored_signals():
    # Handlers on the lowest and the highest numbers (a real-time one) reset,
    # an ignored signal stays ignored (as exec keeps it).
    handled = (signal.SIGHUP, signal.SIGUSR1, signal.SIGRTMAX)
    previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
    previous[signal.SIGUSR2] = signal.signal(signal.SIGUSR2, signal.SIG_IGN)

    def child():
        return {int(signum): str(signal.getsignal(signum)) for signum in (*handled, signal.SIGUSR2)}

    try:
        report = await json_from_child(child)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    default, ignored = str(signal.SIG_DFL), str(signal.SIG_IGN)
    assert report == {
        **{str(int(signum)): default for signum in handled}, str(int(signal.SIGUSR2)): ignored,
    }


@trio_parent_test(timeout=20)
async def test_a_child_names_its_process_in_15_bytes_without_half_a_character():
    from tractor_subint.spawn import name_this_process


    def child():
        names = []
        for name in ('ts:short', 'ts:' + 'é' * 10):
            name_this_process(name)
            with open('/proc/self/comm', 'rb') as comm:
                names.append(comm.read().rstrip(b'\n').decode())
        return names

    names = await json_from_child(child)
    # 'ts:' and six 2-byte characters make 15 bytes; the seventh does not fit.
    assert names == ['ts:short', 'ts:' + 'é' * 6]


@trio_parent_test(timeout=20)
async def test_stdio_devnull_policy(tmp_path):
    targets = await json_from_child(
        lambda: [os.readlink(f'/proc/self/fd/{fd}') for fd in (0, 1, 2)], stdio='devnull',
    )
    assert targets == ['/dev/null'] * 3


@trio_parent_test(timeout=20)
async def test_stdio_file_policy_collects_output(tmp_path):
    log = tmp_path / 'child.log'

    def child():
        print('hello from the child')
        os.write(2, b'and from its stderr\n')

    async with ForkedProcess(await fork_child(child, stdio=str(log))) as proc:
        pass
    assert proc.returncode == 0
    assert log.read_text() == 'hello from the child\nand from its stderr\n'


@trio_parent_test(timeout=20)
async def test_stdio_policy_from_environment(tmp_path, monkeypatch):
    log = tmp_path / 'env.log'
    monkeypatch.setenv('TRACTOR_SUBINT_CHILD_STDIO', str(log))
    async with ForkedProcess(await fork_child(lambda: print('via env'))):
        pass
    assert log.read_text() == 'via env\n'


@pytest.mark.parametrize('policy', ['relative/path.log', '/no/such/dir/x.log'])
def test_bad_stdio_policy_fails_before_forking(policy):
    with pytest.raises(ValueError, match='stdio policy'):
        fork_from_worker_thread(lambda: None, stdio=policy)


def test_fork_guard_refuses_with_live_subinterpreter():
    interp = _interpreters.create('legacy')
    try:
        with pytest.raises(RuntimeError) as err:
            fork_from_worker_thread(lambda: None)
    finally:
        _interpreters.destroy(interp)
    message = str(err.value)
    assert f'1 live subinterpreter(s) (ids [{interp}])' in message
    assert 'forkserver' in message and 'fork_with_live_subinterpreter.md' in message
    # Once it is gone, forking works again.
    assert wait_child(fork_from_worker_thread(lambda: None)) == (True, 'rc=0 (exited normally)')


def test_fork_guard_refuses_inside_subinterpreter():
    # The subinterpreter is hosted in a forked child, so that even a broken
    # guard could not take this test process down with it.
    bootstrap = (
        'from tractor_subint.spawn._subint_forkserver import fork_from_worker_thread\n'
        'try:\n'
        '    fork_from_worker_thread(lambda: None)\n'
        'except RuntimeError as exc:\n'
        '    assert "refusing to fork from inside subinterpreter" in str(exc), exc\n'
        '    assert "subint_fork_blocked_by_cpython_post_fork.md" in str(exc), exc\n'
        'else:\n'
        '    raise AssertionError("fork inside a subinterpreter was not refused")\n'
    )
    pid = fork_from_worker_thread(lambda: run_subint_in_worker_thread(bootstrap))
    assert wait_child(pid) == (True, 'rc=0 (exited normally)')


def test_raw_fork_inside_hosted_subint_is_a_clean_error():
    # allow_fork=False turns an accidental os.fork() in hosted code into a
    # RuntimeError instead of a child that dies at once.
    def child():
        try:
            run_subint_in_worker_thread('import os\nos.fork()\n')
        except SubintExecError as exc:
            assert exc.type_name == 'RuntimeError', exc
            assert 'fork not supported' in exc.message, exc
        else:
            raise AssertionError('os.fork() inside the subinterpreter succeeded')

    assert wait_child(fork_from_worker_thread(child)) == (True, 'rc=0 (exited normally)')


STALE_FD_CLOSED = 3
STALE_FD_REUSED = 4


@trio_parent_test(timeout=20)
async def test_an_inherited_runtime_socket_never_closes_a_reused_fd():
    """The late-finaliser hazard, forced: the parent leaves a runtime channel
    as uncollected garbage, the child reuses its fd number after the prelude
    closed it, then collects. The inherited object must not close that fd."""
    ours, theirs = socket.socketpair()
    channel = Channel.from_socket(ours, get_codec())
    stale_fd = ours.fileno()
    gc.disable()  # keep the garbage uncollected until the fork
    try:
        cycle: list[object] = [channel]
        cycle.append(cycle)
        del cycle, channel, ours

        def child() -> None:
            r, _w = os.pipe()
            os.dup2(r, stale_fd)  # the number the inherited socket object holds
            gc.collect()
            try:
                os.fstat(stale_fd)
            except OSError:
                sys.exit(STALE_FD_CLOSED)

        pid = await fork_child(child)
    finally:
        with warnings.catch_warnings():
            # Ours, left unclosed on purpose: finalised from here on.
            warnings.simplefilter('ignore', ResourceWarning)
            gc.enable()
            gc.collect()
    ok, status = await trio.to_thread.run_sync(wait_child, pid)
    theirs.close()
    assert ok, status


def _fork_warnings(fork: object) -> list[str]:
    """The fork DeprecationWarnings recorded while ``fork()`` runs with a
    second thread alive (what makes CPython warn)."""
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)
    other.start()
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter('always')
            pid = fork()  # type: ignore[operator]
            if pid == 0:
                os._exit(0)
    finally:
        idle.set()
        other.join()
    assert wait_child(pid)[0]
    return [str(w.message) for w in seen if 'use of fork()' in str(w.message)]


def test_our_fork_does_not_show_users_the_multithreaded_fork_warning():
    assert _fork_warnings(lambda: fork_from_worker_thread(lambda: None)) == []


def test_another_library_s_fork_still_warns():
    # The silence is scoped to our own call: a plain os.fork() in the same
    # situation (and after ours) still warns, so nobody else's is hidden.
    assert _fork_warnings(lambda: fork_from_worker_thread(lambda: None)) == []
    assert len(_fork_warnings(os.fork)) == 1


SLOW_MODULE = '''
import os, _import_gate
_import_gate.hold_in(PARENT)   # the parent's importing thread waits here
VALUE = 'complete'
'''


@trio_parent_test(timeout=30)
async def test_a_module_another_thread_imports_at_the_fork_imports_afresh_in_the_child(tmp_path, monkeypatch):
    """Force the interleaving: a parent thread is inside a module's body,
    holding its import lock, when we fork. The child's import of that
    module must run it afresh, not wait for a thread the child lacks."""
    import _import_gate

    (tmp_path / 'slow_module_for_fork.py').write_text(SLOW_MODULE.replace('PARENT', str(os.getpid())))
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = threading.Thread(target=__import__, args=('slow_module_for_fork',))
    importer.start()
    try:
        assert _import_gate.holding.wait(10), 'the importing thread never got inside the module'
        pipe = ChildPipe()

        def child():
            import slow_module_for_fork

            send_line(pipe.write_fd, slow_module_for_fork.VALUE)

        pid = await fork_child(child, keep_fds=pipe.keep_fds)
        pipe.parent_side()
        async with ForkedProcess(pid) as proc:
            line = await pipe.receive_all()
            await proc.wait()
            assert line.strip() == 'complete', proc.exit_status.describe()
        assert proc.returncode == 0, proc.exit_status
        await pipe.aclose()
    finally:
        _import_gate.release.set()
        importer.join()
        sys.modules.pop('slow_module_for_fork', None)
