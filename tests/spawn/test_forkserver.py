"""The forkserver: a clean exec'd process that forks children for requesters
that cannot fork themselves (they hold, or run inside, a subinterpreter)."""
from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from functools import partial

import pytest
import trio
import trio.testing
from _childio import LineReader, socket_reader
from _forkserver_entries import ENV_VAR

from tractor_subint.spawn import (
    PARENT_GONE_EXIT,
    STATUS_LOST_RETURNCODE,
    ChildExit,
    SpawnRequest,
    run_subint_in_worker_thread,
)
from tractor_subint.spawn._child_host import LIFELINE_GRACE
from tractor_subint.spawn._wire import WireChannel
from tractor_subint.spawn.forkserver import (
    Forkserver,
    ForkserverChild,
    ForkserverError,
    spawn_via_forkserver,
    start_forkserver,
)
from tractor_subint.spawn.pool._sizing import DEFAULT_SIZE
from tractor_subint.testing import descendants, trio_parent_test

HOSTS = pytest.mark.parametrize('host', ['main', 'subint'])
ENTRIES = '_forkserver_entries'


@pytest.fixture
def forkserver():
    with start_forkserver() as fs:
        yield fs


async def spawn(
    address: str, fn: str, payload: bytes = b'', *, host: str = 'main', warm_pool: int | None = 0,
    **request_kw: object,
) -> tuple[ForkserverChild, LineReader]:
    """Spawn ``_forkserver_entries.fn`` through the forkserver at ``address``;
    return its handle and our end of its IPC socket."""
    ours, theirs = socket.socketpair()
    try:
        request = SpawnRequest(
            name=fn, entry=f'{ENTRIES}:{fn}', boot_payload=payload, ipc_fd=theirs.fileno(),
            **request_kw,  # type: ignore[arg-type]
        )
        child = await spawn_via_forkserver(address, request, host=host, warm_pool=warm_pool)  # type: ignore[arg-type]
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()  # the child has its own copy
    return child, socket_reader(ours)


@HOSTS
@trio_parent_test(timeout=30)
async def test_child_echoes_payload_over_its_ipc_socket(forkserver, host):
    child, peer = await spawn(
        forkserver.address, 'echo', b'\x00hello', host=host, env={ENV_VAR: 'from-request'},
    )
    async with child:
        report = json.loads(await peer.receive_line())
    await peer.aclose()
    assert report['pid'] == child.pid
    assert report['payload'] == '\x00hello'
    assert report['env'] == 'from-request'
    assert (report['interp_id'] != 0) == (host == 'subint')
    assert child.returncode == 0 and child.poll() == 0
    assert child.exit_status.returncode == 0 and child.child_exception is None
    assert not child.status_lost
    assert os.environ.get(ENV_VAR) is None  # the request's env is the child's only


def _members(server_pid: int) -> list[int]:
    """The server's warm pool members (its children named ``ts:warm``)."""
    return [p.pid for p in descendants(server_pid) if p.ppid == server_pid and p.comm == 'ts:warm']


async def _echoed(address: str, *, warm_pool: int | None) -> int:
    """A subint child that echoes and exits, waited for; its pid."""
    child, peer = await spawn(address, 'echo', b'x', host='subint', warm_pool=warm_pool)
    async with child:
        report = json.loads(await peer.receive_line())
    await peer.aclose()
    assert report['pid'] == child.pid and child.returncode == 0
    return child.pid


async def _members_count(server_pid: int, count: int) -> list[int]:
    with trio.fail_after(30):
        while len(members := _members(server_pid)) != count:
            await trio.sleep(0.05)
    return members


@trio_parent_test(timeout=60)
async def test_the_server_s_adaptive_pool_is_dormant_until_the_second_subint_request(forkserver):
    # The first subint child of a tree must not pay for members forked
    # beside it; the second wakes the pool to its start size.
    first = await _echoed(forkserver.address, warm_pool=None)  # its exit reported:
    assert _members(forkserver.pid) == []  # the server has looped since the request
    second = await _echoed(forkserver.address, warm_pool=None)
    members = await _members_count(forkserver.pid, DEFAULT_SIZE)
    assert second not in members and first not in members


@trio_parent_test(timeout=60)
async def test_an_explicit_size_warms_the_server_s_pool_from_the_first_request(forkserver):
    await _echoed(forkserver.address, warm_pool=3)
    members = await _members_count(forkserver.pid, 3)
    assert (await _echoed(forkserver.address, warm_pool=3)) in members  # a hit, not a cold fork


@trio_parent_test(timeout=30)
async def test_exit_code_is_reported(forkserver):
    child, peer = await spawn(forkserver.address, 'exit_with', b'3')
    assert await child.wait() == 3
    assert child.exit_status.describe().startswith('rc=3')
    assert child.child_exception is None
    await peer.aclose()


@HOSTS
@trio_parent_test(timeout=30)
async def test_kill_is_a_signal_death(forkserver, host):
    child, peer = await spawn(forkserver.address, 'wait_for_cancel', host=host)
    assert await peer.receive_line() == 'ready'
    assert child.poll() is None
    child.kill()
    assert await child.wait() == -signal.SIGKILL
    assert child.exit_status.signal == signal.SIGKILL
    child.kill()  # no-op once it is gone
    child.terminate()
    await peer.aclose()


@HOSTS
@trio_parent_test(timeout=30)
async def test_exception_in_entry_reaches_requester(forkserver, host):
    child, peer = await spawn(forkserver.address, 'raise_value_error', b'bad boot payload', host=host)
    assert await child.wait() == ChildExit.TARGET_RAISED
    exc = child.child_exception
    assert exc is not None
    if host == 'main':
        assert exc.type_name == 'builtins.ValueError'
        assert exc.message == 'bad boot payload'
    else:
        # Raised inside the child's subinterpreter, carried out as one.
        assert exc.type_name.endswith('SubintExecError')
        assert 'ValueError: bad boot payload' in exc.message
    assert 'in raise_value_error' in exc.traceback
    assert 'bad boot payload' in child.exit_status.describe()
    await peer.aclose()


@trio_parent_test(timeout=30)
async def test_unimportable_entry_is_reported(forkserver):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        request = SpawnRequest('ghost', 'no_such_module_for_tractor_subint:fn', ipc_fd=theirs.fileno())
        async with await spawn_via_forkserver(forkserver.address, request, host='main') as child:
            pass
    assert child.returncode == ChildExit.TARGET_RAISED
    assert child.child_exception.type_name == 'builtins.ModuleNotFoundError'


@HOSTS
@trio_parent_test(timeout=30)
async def test_terminate_gives_a_clean_exit(forkserver, host):
    child, peer = await spawn(forkserver.address, 'wait_for_cancel', host=host)
    async with child:
        assert await peer.receive_line() == 'ready'
        child.terminate()
        # The host forwarded SIGTERM as a byte on cancel_fd, and the entry
        # ran its cleanup.
        assert await peer.receive_line() == f'cancelled {signal.SIGTERM}'
    assert child.returncode == 128 + signal.SIGTERM, child.exit_status
    assert child.child_exception is None
    await peer.aclose()


@HOSTS
@trio_parent_test(timeout=30)
async def test_lifeline_hang_up_ends_the_child(forkserver, host):
    child, peer = await spawn(forkserver.address, 'wait_for_cancel', host=host)
    assert await peer.receive_line() == 'ready'
    await peer.aclose()  # as if the logical parent died
    with trio.fail_after(LIFELINE_GRACE + 10):
        assert await child.wait() == PARENT_GONE_EXIT, child.exit_status
    assert 'parent gone' in child.exit_status.describe()


@trio_parent_test(timeout=30)
async def test_stdio_policy_reaches_the_child(forkserver, tmp_path):
    log = tmp_path / 'child.log'
    child, peer = await spawn(forkserver.address, 'say', b'to the log', stdio=str(log))
    async with child:
        pass
    await peer.aclose()
    assert child.returncode == 0
    assert log.read_text() == 'to the log\n'


# --- the point of it all: a requester that holds a live subinterpreter -----

REQUESTER_IN_SUBINT = '''
import sys
sys.path[:] = sys_path.split('\\0')

import trio
from _forkserver_entries import spawn_from_subinterpreter

trio.run(spawn_from_subinterpreter, address, report_fd)
'''


@pytest.mark.parametrize('started_by', ['test', 'subint'])
@trio_parent_test(timeout=60)
async def test_requester_inside_a_subinterpreter_gets_healthy_children(forkserver, started_by):
    """From inside a subinterpreter (so this process holds a live one, and
    a direct fork would crash the child), spawn through the forkserver: the
    children run and exit cleanly. With ``started_by='subint'`` the
    subinterpreter also starts (and closes) its own forkserver."""
    report_r, report_w = os.pipe()
    try:
        await trio.to_thread.run_sync(partial(
            run_subint_in_worker_thread,
            REQUESTER_IN_SUBINT,
            shared={
                'sys_path': '\0'.join(sys.path),
                'address': forkserver.address if started_by == 'test' else '',
                'report_fd': report_w,
            },
        ))
        os.close(report_w)
        report_w = -1
        lines = os.read(report_r, 65536).decode().splitlines()
    finally:
        os.close(report_r)
        if report_w >= 0:
            os.close(report_w)
    assert lines == [
        'fork refused here: True',
        'main: rc=0 interp=0',
        'subint: rc=0 interp=nonzero',
        'terminated subint: rc=143',
    ], lines


# --- lifetime of the server ------------------------------------------------

@trio_parent_test(timeout=30)
async def test_close_stops_the_server():
    fs = start_forkserver()
    try:
        child, peer = await spawn(fs.address, 'echo', b'x')
        async with child:
            await peer.receive_line()
        await peer.aclose()
    finally:
        fs.close()
    assert fs.returncode == 0
    assert not os.path.exists(os.path.dirname(fs.address))
    fs.close()  # idempotent
    with pytest.raises(ForkserverError, match='cannot reach'):
        await spawn(fs.address, 'echo')


OWNER = '''
import signal
from tractor_subint.spawn.forkserver import start_forkserver
fs = start_forkserver()
print(fs.pid, fs.address, flush=True)
signal.pause()
'''


@trio_parent_test(timeout=30)
async def test_server_exits_when_its_owner_dies():
    owner = await trio.lowlevel.open_process(
        [sys.executable, '-c', OWNER], stdout=subprocess.PIPE,
    )
    server_pidfd = -1
    try:
        line = b''
        while not line.endswith(b'\n'):
            chunk = await owner.stdout.receive_some()
            assert chunk, f'owner exited early: {await owner.wait()}'
            line += chunk
        pid_text, address = line.decode().split()
        server_pid = int(pid_text)
        # Opened while the owner lives: the server cannot have exited yet.
        server_pidfd = os.pidfd_open(server_pid)
    finally:
        owner.kill()
        await owner.wait()
        await owner.stdout.aclose()
    # The owner is gone and reaped, so the server (an orphan) is now ours:
    # this session is a subreaper.
    await trio.lowlevel.wait_readable(server_pidfd)
    os.close(server_pidfd)
    _, status = os.waitpid(server_pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not os.path.exists(os.path.dirname(address))  # cleaned up after itself


@trio_parent_test(timeout=30)
async def test_children_outlive_the_server():
    """Closing the server does not touch its children; once it is gone, the
    orphan is ours (subreaper) and its status comes from the kernel."""
    fs = start_forkserver()
    try:
        child, peer = await spawn(fs.address, 'wait_for_cancel', host='subint')
        assert await peer.receive_line() == 'ready'
    finally:
        fs.close()
    async with child:
        assert child.poll() is None
        child.terminate()
        assert await peer.receive_line() == f'cancelled {signal.SIGTERM}'
    assert child.returncode == 128 + signal.SIGTERM
    assert not child.status_lost
    await peer.aclose()


LOST_PARENT = '''
import os, sys
pid = os.fork()
if pid == 0:
    os.read(0, 1)
    os._exit(7)
print(pid, flush=True)
os.waitpid(pid, 0)
'''


@trio_parent_test(timeout=30)
async def test_status_lost_when_the_server_dies_and_the_child_is_not_ours():
    """The connection ends without a status frame and somebody else reaped
    the child: the handle says so instead of inventing an exit code."""
    middle = await trio.lowlevel.open_process(
        [sys.executable, '-c', LOST_PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        line = b''
        while not line.endswith(b'\n'):
            chunk = await middle.stdout.receive_some()
            assert chunk, 'middle process exited early'
            line += chunk
        pidfd = os.pidfd_open(int(line))
        ours, theirs = socket.socketpair()
        theirs.close()  # the "server" is gone without a word
        child = ForkserverChild(int(line), pidfd, WireChannel(ours))
        await middle.stdin.send_all(b'x')  # the grandchild exits...
        assert await middle.wait() == 0  # ... and the middle has reaped it
        assert await child.wait() == STATUS_LOST_RETURNCODE
        assert child.status_lost
        assert 'exit status lost' in child.exit_status.describe()
    finally:
        if middle.returncode is None:  # something failed
            middle.kill()
            await middle.wait()
        await middle.stdin.aclose()
        await middle.stdout.aclose()


# --- protocol robustness -------------------------------------------------------

async def _raw_exchange(
    address: str, data: bytes, fds: tuple[int, ...] = (),
) -> tuple[dict, list[int], trio.socket.SocketType]:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(address)
    ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))] if fds else []
    await sock.sendmsg([data], ancdata)
    buffer, fds_in = b'', []
    while len(buffer) < 4 or len(buffer) < 4 + struct.unpack('>I', buffer[:4])[0]:
        chunk, anc, _flags, _ = await sock.recvmsg(65536, socket.CMSG_SPACE(16))
        assert chunk, f'server hung up; got {buffer!r}'
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds_in.extend(array.array('i', payload))
        buffer += chunk
    size = struct.unpack('>I', buffer[:4])[0]
    return json.loads(buffer[4:4 + size]), fds_in, sock


def _frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack('>I', len(body)) + body


async def _expect_error(address: str, data: bytes, fds: tuple[int, ...] = ()) -> str:
    reply, fds_in, sock = await _raw_exchange(address, data, fds)
    with sock:
        assert fds_in == []
        assert set(reply) == {'error'}, reply
        assert await sock.recv(1) == b''  # and the server hangs up
    return reply['error']


def _request(fn: str, *, stdio: object = 'inherit', **child_overrides: object) -> dict:
    child = {
        'name': fn, 'entry': f'{ENTRIES}:{fn}', 'payload': '', 'host': 'main',
        'tree': None, 'env': {}, 'sys_path': sys.path,
    }
    child.update(child_overrides)
    return {'child': child, 'stdio': stdio}


@trio_parent_test(timeout=30)
async def test_bad_requests_get_error_frames(forkserver):
    address = forkserver.address
    assert 'not JSON' in await _expect_error(address, struct.pack('>I', 3) + b'{{{')
    assert 'not an object' in await _expect_error(address, _frame([1, 2]))
    assert 'exceeds' in await _expect_error(address, struct.pack('>I', 1 << 31))
    assert 'exactly 1 attached fd' in await _expect_error(address, _frame(_request('echo')))
    ours, theirs = socket.socketpair()
    with ours, theirs:
        for bad, reason in [
            ({'host': 'elsewhere'}, 'host must be'),
            ({'entry': 'no-colon'}, 'entry must look like'),
            ({'payload': '%%%'}, 'not hex'),
            ({'tree': 7}, 'tree must be'),
            ({'sys_path': '/not/a/list'}, 'sys_path must be'),
            ({'stdio': 'relative/path'}, 'stdio policy'),
            ({'env': {'A': 1}}, 'env must map'),
        ]:
            error = await _expect_error(address, _frame(_request('echo', **bad)), (theirs.fileno(),))
            assert reason in error, error
        # What the server refuses, spawn_via_forkserver raises.
        bad_env = SpawnRequest('x', f'{ENTRIES}:echo', ipc_fd=theirs.fileno(), env={'A': 1})  # type: ignore[dict-item]
        with pytest.raises(ForkserverError, match='refused.*env must map'):
            await spawn_via_forkserver(address, bad_env, host='main')
    # A requester that gives up half-way through a frame.
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.connect(address)
    await sock.send(struct.pack('>I', 100) + b'{"na')
    sock.close()
    # The server is still serving.
    child, peer = await spawn(address, 'echo', b'still here')
    async with child:
        assert json.loads(await peer.receive_line())['payload'] == 'still here'
    await peer.aclose()


@trio_parent_test(timeout=30)
async def test_child_is_reaped_after_its_requester_hangs_up(forkserver):
    ours, theirs = socket.socketpair()
    with theirs:
        reply, fds, conn = await _raw_exchange(
            forkserver.address, _frame(_request('wait_for_cancel')), (theirs.fileno(),),
        )
    assert len(fds) == 1, reply
    pidfd = fds[0]
    conn.close()  # the requester is gone
    peer = socket_reader(ours)
    try:
        assert await peer.receive_line() == 'ready'
        await peer.aclose()  # lifeline: the child exits on its own
        await trio.lowlevel.wait_readable(pidfd)  # it has exited...
        # ... and two round trips later the server has surely seen that.
        for _ in range(2):
            await _expect_error(forkserver.address, _frame([]))
        with pytest.raises(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, 0)  # reaped: no zombie left
    finally:
        os.close(pidfd)


@trio_parent_test(timeout=30)
async def test_cancelled_spawn_leaves_no_child(forkserver):
    ours, theirs = socket.socketpair()
    with ours, theirs:
        request = SpawnRequest('w', f'{ENTRIES}:wait_for_cancel', ipc_fd=theirs.fileno())
        with trio.CancelScope() as scope:
            scope.cancel()  # already cancelled: the request never leaves
            await spawn_via_forkserver(forkserver.address, request, host='main')
        assert scope.cancelled_caught

        async def spawn_then_cancel(task_status=trio.TASK_STATUS_IGNORED):
            with trio.CancelScope() as inner:
                task_status.started(inner)
                await spawn_via_forkserver(forkserver.address, request, host='main')
                raise AssertionError('not cancelled')

        async with trio.open_nursery() as nursery:
            inner = await nursery.start(spawn_then_cancel)
            await trio.testing.wait_all_tasks_blocked()
            inner.cancel()
        # Whatever point the cancel hit, no child outlives the spawn.
        assert {p.pid for p in descendants()} == {forkserver.pid}


def test_forkserver_is_a_context_manager():
    with start_forkserver() as fs:
        assert isinstance(fs, Forkserver)
        assert os.path.exists(fs.address)
    assert fs.returncode == 0
