"""Debug mode (issue 18, item 6): a REPL in any actor of every backend (in a
subinterpreter on a worker thread too), one at a time, the root holding the
terminal."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import api_targets
import trio
from _rt_helpers import SCRIPTS_DIR, Fifo

import tractor_subint as ts
from tractor_subint.testing import trio_parent_test

TIMEOUT = 60


def _run(start_method: str, mode: str, lines: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, TRACTOR_SUBINT_SPAWN_METHOD=start_method, PYTHONUNBUFFERED='1')
    env.pop('TRACTOR_SUBINT_CHILD_STDIO', None)  # actors share the terminal (here: pipes)
    env.pop('TRACTOR_SUBINT_LOG', None)
    return subprocess.run(
        [sys.executable, str(SCRIPTS_DIR / 'debug_tree.py'), mode],
        input='c\n' * lines, capture_output=True, text=True, timeout=TIMEOUT,
        start_new_session=True,
    )


def _prompts(out: str) -> list[str]:
    return re.findall(r'\((\w+)\) Pdb> ', out)


def test_a_child_s_pause_and_breakpoint_get_the_terminal(start_method):
    done = _run(start_method, 'one', lines=2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _prompts(done.stdout) == ['child', 'child']
    assert 'RESULT one done' in done.stdout


def test_two_children_take_turns_at_the_terminal(start_method):
    done = _run(start_method, 'two', lines=4)
    assert done.returncode == 0, done.stdout + done.stderr
    # Each actor's announcement is followed by its own prompt: never another's.
    events = re.findall(r'\[(\w+)\] paused|\((\w+)\) Pdb> ', done.stdout)
    assert len(events) == 8, done.stdout
    for (announced, _), (_, prompted) in zip(events[::2], events[1::2], strict=True):
        assert announced == prompted, done.stdout
    assert sorted(p for _, p in events[1::2]) == ['alpha', 'alpha', 'beta', 'beta']
    assert 'RESULT a done b done' in done.stdout


def test_a_crash_gets_a_repl_in_the_child_then_in_the_root(start_method):
    done = _run(start_method, 'crash', lines=3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _prompts(done.stdout) == ['crasher', 'root'], done.stdout
    assert 'LookupError: crashed on purpose' in done.stderr


def test_the_root_s_crash_repl_names_what_a_group_holds(start_method):
    done = _run(start_method, 'group', lines=1)
    assert done.returncode == 1, done.stdout + done.stderr
    assert _prompts(done.stdout) == ['root']
    assert re.search(
        r'\[root\] crashed: ExceptionGroup: .*\[LookupError: crashed on purpose\]', done.stdout,
    ), done.stdout


def test_the_root_s_pause(start_method):
    done = _run(start_method, 'root', lines=1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _prompts(done.stdout) == ['root']
    assert 'RESULT root continued' in done.stdout


async def _queue_behind_the_root(an, root, fifo_path: str) -> ts.Portal:
    """Spawn a child that pauses while the root holds the terminal; check
    that it waits its turn, then give it the terminal."""
    portal = await an.start_actor('waiter', enable_modules=['api_targets', 'actor_targets'])
    fifo = _fifos[fifo_path]
    outcome: list[BaseException] = []

    async def call() -> None:
        try:
            await portal.run(api_targets.pause_on_empty_stdin, fifo=fifo_path)
        except ts.RemoteActorError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as tasks:
        tasks.start_soon(call)
        assert await fifo.receive_line() == 'pausing'
        # The child asked the root for the terminal and waits its turn.
        while root.tty_lock.statistics().tasks_waiting < 1:
            await trio.sleep(0.01)
        assert outcome == []
        root.tty_lock.release()
    # Its turn came: its REPL read the end of its input (stdin is empty) and quit.
    assert len(outcome) == 1 and outcome[0].type_name == 'bdb.BdbQuit', outcome
    return portal


_fifos: dict[str, Fifo] = {}


def test_a_child_waits_for_the_terminal_while_another_actor_holds_it(start_method, fifo):
    _fifos[fifo.path] = fifo

    @trio_parent_test(timeout=30)
    async def body() -> None:
        async with ts.open_nursery(debug_mode=True) as an:
            root = ts.current_actor()
            await root.tty_lock.acquire()  # the root holds the terminal
            try:
                portal = await _queue_behind_the_root(an, root, fifo.path)
            finally:
                if root.tty_lock.locked():
                    root.tty_lock.release()
            await portal.cancel_actor()

    try:
        body()
    finally:
        del _fifos[fifo.path]
