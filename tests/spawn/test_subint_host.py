"""run_subint_in_worker_thread() and the full fork + subint architecture."""
from __future__ import annotations

import _interpreters
import os

import pytest
import trio
from _childio import fork_child
from _subint_children import host_peer
from _subint_peer import Add, Stop, Sum, receive_frame, send_frame

from tractor_subint.spawn._subint_forkserver import (
    ChildExit,
    ForkedProcess,
    SubintExecError,
    fork_from_worker_thread,
    run_subint_in_worker_thread,
    wait_child,
)
from tractor_subint.testing import trio_parent_test


def test_bootstrap_failure_raises_with_subint_traceback():
    bootstrap = 'def broken():\n    raise KeyError("no such actor")\nbroken()\n'
    with pytest.raises(SubintExecError) as err:
        run_subint_in_worker_thread(bootstrap)
    exc = err.value
    assert exc.type_name == 'KeyError'
    assert exc.message == "'no such actor'"
    assert 'in broken' in exc.traceback
    assert 'in broken' in str(exc)
    assert _interpreters.list_all() == [_interpreters.get_main()]  # torn down


def test_bootstrap_import_error_is_not_success():
    with pytest.raises(SubintExecError, match='ModuleNotFoundError'):
        run_subint_in_worker_thread('import no_such_module_for_tractor_subint\n')


def test_shared_values_reach_the_subinterpreter():
    bootstrap = (
        'assert payload == b"\\x00boot", payload\n'
        'assert name == "worker" and count == 3, (name, count)\n'
    )
    run_subint_in_worker_thread(
        bootstrap, shared={'payload': b'\x00boot', 'name': 'worker', 'count': 3}
    )


def test_failing_bootstrap_in_forked_child_reaches_parent():
    def child():
        run_subint_in_worker_thread('raise RuntimeError("bad boot payload")\n')

    ok, status = wait_child(fork_from_worker_thread(child))
    assert not ok
    assert status.startswith(f'rc={ChildExit.TARGET_RAISED}')
    assert 'SubintExecError' in status and 'bad boot payload' in status


def test_teardown_after_to_thread_does_not_abort():
    # On 3.13.0, destroy() with trio's idle to_thread worker still alive in
    # the subinterpreter aborts the whole process. Run it in a forked child so
    # a regression shows up as a signal death instead of killing pytest.
    bootstrap = (
        'import trio\n'
        'async def main():\n'
        '    assert await trio.to_thread.run_sync(lambda: 41) == 41\n'
        'trio.run(main)\n'
    )

    def child():
        run_subint_in_worker_thread(bootstrap)
        assert _interpreters.list_all() == [_interpreters.get_main()], 'not destroyed'

    assert wait_child(fork_from_worker_thread(child)) == (True, 'rc=0 (exited normally)')


@trio_parent_test(timeout=30)
async def test_trio_in_subint_in_child_exchanges_msgspec_frames(tmp_path):
    sock_path = str(tmp_path / 'parent.sock')
    listener = trio.SocketListener(await _bind_unix(sock_path))
    pid = await fork_child(lambda: host_peer(sock_path))
    async with ForkedProcess(pid) as proc, listener:
        stream = await listener.accept()
        async with stream:
            for x, y in [(1, 2), (20, 22), (-5, 5)]:
                await send_frame(stream, Add(x, y))
                reply = await receive_frame(stream)
                assert isinstance(reply, Sum)
                assert reply.total == x + y
                assert reply.pid == pid
                assert reply.interp_id != 0  # served from a subinterpreter
            await send_frame(stream, Stop())
    assert proc.returncode == 0, proc.exit_status


async def _bind_unix(path: str) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ('bootstrap', 'original'),
    [
        ("raise ValueError('text: \\udc80')", 'ValueError'),
        ('class Unprintable(Exception):\n'
         '    def __str__(self):\n'
         '        raise ValueError\n'
         'raise Unprintable()\n', 'Unprintable'),
        ("try:\n"
         "    raise ValueError('\\udc80')\n"
         "except ValueError:\n"
         "    raise KeyError('outer')\n", 'KeyError'),
    ],
    ids=['lone-surrogate', 'str-raises', 'unsafe-context'],
)
def test_an_exception_cpython_cannot_copy_out_arrives_as_safe_text(bootstrap, original):
    # Raw, each of these kills the process by SIGSEGV (the smoketest's
    # control_unprintable_exception_escapes_subint); reaching the asserts is the test.
    with pytest.raises(SubintExecError) as err:
        run_subint_in_worker_thread(bootstrap)
    assert err.value.type_name == 'RuntimeError'
    assert f'{original} whose text cannot leave the subinterpreter' in err.value.message
    str(err.value).encode('utf-8')  # safe to print anywhere
    assert _interpreters.list_all() == [_interpreters.get_main()]


def test_a_printable_exception_crosses_unchanged():
    with pytest.raises(SubintExecError) as err:
        run_subint_in_worker_thread("raise ValueError('plain text: \\u00e9')\n")
    assert (err.value.type_name, err.value.message) == ('ValueError', 'plain text: \u00e9')


_SPY_ON_SUBPROCESSES = '''
import os, subprocess
_real_init = subprocess.Popen.__init__
def _spy(self, args, *rest, **kwargs):
    os.write(__tractor_subint_test_fd__, (repr(args) + '\\n').encode())
    return _real_init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = _spy
import trio
'''


def test_importing_trio_in_a_subint_starts_no_subprocess():
    # Unseeded, trio's import runs `/sbin/ldconfig -p` (ctypes.util.find_library):
    # a process per actor, orphaned if the actor is killed meanwhile.
    read_fd, write_fd = os.pipe()
    try:
        run_subint_in_worker_thread(_SPY_ON_SUBPROCESSES, shared={'__tractor_subint_test_fd__': write_fd})
        os.close(write_fd)
        write_fd = -1
        started = os.read(read_fd, 65536).decode()
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    assert started == ''


def test_no_subinterpreter_is_created_while_a_fork_holds_the_creation_lock():
    # A fork holds CREATION_LOCK from its last check to os.fork(): a creation
    # in between would make the child crash. Hold it as a fork would.
    import threading

    from tractor_subint.spawn._subint_host import CREATION_LOCK, new_subint

    created: list[int] = []
    with CREATION_LOCK:
        creator = threading.Thread(target=lambda: created.append(new_subint('isolated')))
        creator.start()
        creator.join(0.3)
        assert creator.is_alive() and created == []  # waiting for the "fork" to end
        assert _interpreters.list_all() == [_interpreters.get_main()]
    creator.join(10)
    assert len(created) == 1
    _interpreters.destroy(created[0])
