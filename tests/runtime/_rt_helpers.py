"""Helpers for the runtime behaviour suite: FIFOs to hear from actors without
sleeping, a gate to release many actors at once, pid checks, and scripts run
as subprocesses."""
from __future__ import annotations

import json
import os
import pathlib
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from tractor_subint.spawn import get_backend, live_subinterpreters, pooled_interpreters

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]
SCRIPTS_DIR = TESTS_DIR / 'scripts'


class Fifo:
    """A named pipe actors write lines to (``actor_targets.signal_fifo``).

    The test holds it open read-write, so writers never block and the reader
    never sees EOF.
    """

    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._buffer = b''

    async def receive_line(self) -> str:
        while b'\n' not in self._buffer:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                self._buffer += os.read(self._fd, 4096)
            except BlockingIOError:
                continue
        line, _, self._buffer = self._buffer.partition(b'\n')
        return line.decode()

    def receive_lines_blocking(self, n: int, timeout: float) -> list[str]:
        """Block this thread (the trio loop included) until ``n`` lines have
        arrived or ``timeout`` passes; return the lines received."""
        deadline = time.monotonic() + timeout
        while self._buffer.count(b'\n') < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            readable, _, _ = select.select([self._fd], [], [], remaining)
            if readable:
                try:
                    self._buffer += os.read(self._fd, 4096)
                except BlockingIOError:
                    pass
        complete = []
        while len(complete) < n and b'\n' in self._buffer:
            line, _, self._buffer = self._buffer.partition(b'\n')
            complete.append(line.decode())
        return complete

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Gate:
    """A FIFO that actors wait on (``actor_targets.wait_fifo_eof``) until the
    test :meth:`release`\\ s them, all at once."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = str(path)
        os.mkfifo(self.path)
        # Held open (as a writer) until release: readers see EOF only then.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# -- processes -----------------------------------------------------------------

def _proc_state(pid: int) -> str | None:
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            stat = f.read().decode(errors='replace')
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(')') + 2:].split()[0]


def pid_gone(pid: int, *, reap: bool = True) -> bool:
    """Whether ``pid`` has exited. A zombie counts as gone; with ``reap``, a
    zombie that is ours (pytest is a subreaper: orphans come back to it) is
    reaped on the way."""
    if pid == os.getpid():  # in-process actors: gone with their interpreters
        return not actor_interpreters()
    state = _proc_state(pid)
    if state is None:
        return True
    if state == 'Z':
        if reap:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        return True
    return False


def actor_interpreters() -> list[int]:
    """The live subinterpreters of this process that in-process actors still
    hold: every one but those the warm pools keep idle (an ended actor's
    interpreter is destroyed, or recycled into a pool)."""
    return sorted(set(live_subinterpreters()) - set(pooled_interpreters()))


def runs_in_this_process(start_method: str) -> bool:
    """Whether ``start_method``'s actors live inside the spawning process
    (their pid is ours)."""
    return get_backend(start_method).in_process


def not_reaped(pids: Iterable[int]) -> list[str]:
    """The pids that still have a process entry (alive, or a zombie nobody
    reaped), described. For an actor's own children after its nursery is
    done: the runtime must have reaped them.

    Our own pid stands for actors of an in-process backend: what must be gone
    then is every subinterpreter of this process an actor holds (those the
    warm pools keep idle are no actor's).
    """
    left = []
    for pid in dict.fromkeys(pids):
        if pid == os.getpid():
            left += [f'subinterpreter {i} (in this process)' for i in actor_interpreters()]
            continue
        state = _proc_state(pid)
        if state is not None:
            left.append(f'{pid} (state {state})')
    return left


async def wait_pids_gone(pids: Iterable[int], timeout: float, *, reap: bool = True) -> list[int]:
    """Poll (the OS gives no exit event for a process that is not our child)
    until every pid is gone or ``timeout`` passes; return the survivors."""
    pending = set(pids)
    deadline = trio.current_time() + timeout
    while True:
        pending = {pid for pid in pending if not pid_gone(pid, reap=reap)}
        if not pending or trio.current_time() >= deadline:
            return sorted(pending)
        await trio.sleep(0.01)


async def reap_zombies(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is left even as a zombie, reaping those
    that are ours; return the ones still there.

    A zombie whose parent is alive is not ours yet: once that parent dies it
    is re-parented to us (pytest is a subreaper) and must be reaped here, or
    it outlives the test.
    """
    pending = set(pids)
    deadline = trio.current_time() + timeout
    while True:
        for pid in list(pending):
            if _proc_state(pid) == 'Z':
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass  # still its own parent's to reap
            if _proc_state(pid) is None:
                pending.discard(pid)
        if not pending or trio.current_time() >= deadline:
            return sorted(pending)
        await trio.sleep(0.01)


def kill_quietly(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- scripts ---------------------------------------------------------------------

def script_env(start_method: str, **extra: str) -> dict[str, str]:
    """The environment for a ``tests/scripts`` subprocess: the session's
    backend named explicitly, actors on /dev/null (so none of them holds the
    test's stdout pipe open after the script dies)."""
    env = dict(os.environ)
    env['TRACTOR_SUBINT_SPAWN_METHOD'] = start_method
    env['TRACTOR_SUBINT_CHILD_STDIO'] = 'devnull'
    env['PYTHONUNBUFFERED'] = '1'
    env.pop('TRACTOR_SUBINT_TEST_HOOKS', None)
    env.update(extra)
    return env


class ScriptProcess:
    """A ``tests/scripts`` script run with ``sys.executable``; read its stdout
    line by line; stderr goes to a file (it cannot block)."""

    def __init__(self, proc: trio.Process, stderr_path: pathlib.Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self._buffer = b''
        self.lines: list[str] = []

    @classmethod
    async def start(
        cls, name: str, env: dict[str, str], tmp_path: pathlib.Path, *args: str
    ) -> ScriptProcess:
        stderr_path = tmp_path / f'{name}.stderr'
        with open(stderr_path, 'wb') as stderr, open(os.devnull, 'rb') as stdin:
            proc = await trio.lowlevel.open_process(
                [sys.executable, str(SCRIPTS_DIR / name), *args],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                start_new_session=True,  # its own process group, as a shell job would be
            )
        return cls(proc, stderr_path)

    @classmethod
    @asynccontextmanager
    async def running(
        cls, name: str, env: dict[str, str], tmp_path: pathlib.Path, *args: str, timeout: float = 20
    ) -> AsyncIterator[ScriptProcess]:
        """Start the script (with ``args``); the block is bounded by
        ``timeout``; the script is killed (if still running) and reaped when
        it ends."""
        script = await cls.start(name, env, tmp_path, *args)
        try:
            with trio.fail_after(timeout):
                yield script
        finally:
            await script.aclose()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors='replace')[-4000:]
        except OSError:
            return ''

    def describe(self) -> str:
        out = '\n'.join(self.lines)
        return f'stdout so far:\n{out}\nstderr:\n{self.stderr()}'

    async def readline(self) -> str | None:
        """The next stdout line, or None at EOF."""
        assert self.proc.stdout is not None
        while b'\n' not in self._buffer:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                if self._buffer:
                    line, self._buffer = self._buffer, b''
                    self.lines.append(line.decode(errors='replace'))
                    return self.lines[-1]
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b'\n')
        self.lines.append(line.decode(errors='replace'))
        return self.lines[-1]

    async def read_until(self, prefix: str) -> str:
        """Read lines until one starts with ``prefix``; return the rest of it."""
        while True:
            line = await self.readline()
            if line is None:
                raise AssertionError(
                    f'script ended (rc={self.proc.poll()}) before printing {prefix!r}\n'
                    + self.describe()
                )
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    async def read_json_after(self, prefix: str) -> object:
        return json.loads(await self.read_until(prefix))

    async def read_rest(self) -> list[str]:
        rest = []
        while (line := await self.readline()) is not None:
            rest.append(line)
        return rest

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
            if self.proc.stdout is not None:
                await self.proc.stdout.aclose()

