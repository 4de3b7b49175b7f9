"""The package's logging as an application meets it: silent unless asked,
each line once, wall time, actor name and pid, children at the root's level."""
from __future__ import annotations

import datetime
import logging
import re
import subprocess
import sys
import textwrap

import pytest
from _rt_helpers import ScriptProcess, script_env

from tractor_subint import log as _log
from tractor_subint.runtime._bootspec import BootSpec
from tractor_subint.testing import trio_parent_test

CONSOLE_LINE = re.compile(
    r'^(?P<time>\d\d:\d\d:\d\d\.\d{3}) (?P<actor>[\w-]+)\[(?P<pid>\d+)\] '
    r'(?P<level>[A-Z]+) (?P<logger>tractor_subint(\.\w+)?): (?P<message>.*)$'
)
READY = re.compile(r'worker \(pid \d+\) is ready$')
STOPPING = 'stopping: cancelled by parent'


async def _run(start_method: str, tmp_path, mode: str, **env: str) -> tuple[int, int, list[str]]:
    """Run ``log_lines.py MODE``: (root pid, worker pid, every stderr line of
    the root and of its actors)."""
    children = tmp_path / 'children.stderr'
    environ = script_env(start_method, TRACTOR_SUBINT_CHILD_STDIO=str(children), **env)
    if 'TRACTOR_SUBINT_LOG' not in env:
        environ.pop('TRACTOR_SUBINT_LOG', None)
    async with ScriptProcess.running('log_lines.py', environ, tmp_path, mode) as script:
        worker = await script.read_json_after('WORKER')
        await script.read_until('DONE')
        rc = await script.proc.wait()
    assert rc == 0, script.describe()
    lines = script.stderr_path.read_text().splitlines()
    if children.exists():
        lines += children.read_text().splitlines()
    return script.proc.pid, worker['pid'], lines


def _near_now(clock: str) -> bool:
    now = datetime.datetime.now()
    then = datetime.datetime.combine(now.date(), datetime.time.fromisoformat(clock))
    return abs((now - then).total_seconds()) % 86400 < 120


@trio_parent_test(timeout=40)
async def test_an_app_with_basic_config_sees_each_console_line_once(start_method, tmp_path):
    root_pid, worker_pid, lines = await _run(start_method, tmp_path, 'app', TRACTOR_SUBINT_LOG='debug')
    ours = [CONSOLE_LINE.match(line) for line in lines]
    assert all(ours), f'a line not in the console format (or printed twice, by the app): {lines}'
    assert len(set(lines)) == len(lines), lines
    ready = [m for m in ours if m and READY.search(m['message'])]
    stopping = [m for m in ours if m and m['message'] == STOPPING]
    assert len(ready) == 1 and len(stopping) == 1, lines
    assert (ready[0]['actor'], int(ready[0]['pid']), ready[0]['logger']) == (
        'root', root_pid, 'tractor_subint.runtime',
    )
    assert (stopping[0]['actor'], int(stopping[0]['pid'])) == ('worker', worker_pid)
    assert any(m and m['logger'] == 'tractor_subint.spawn' for m in ours), lines
    assert all(m and _near_now(m['time']) for m in ours), 'wall-clock times, not per process'


@trio_parent_test(timeout=40)
async def test_without_the_switch_an_app_gets_the_lines_through_its_own_handlers(start_method, tmp_path):
    _root_pid, _worker_pid, lines = await _run(start_method, tmp_path, 'app')
    ready = [line for line in lines if READY.search(line)]
    assert len(ready) == 1 and ready[0].startswith('DEBUG:tractor_subint.runtime:'), lines
    assert not [line for line in lines if CONSOLE_LINE.match(line)], lines


@trio_parent_test(timeout=40)
async def test_a_console_level_set_in_code_reaches_the_children(start_method, tmp_path):
    _root_pid, worker_pid, lines = await _run(start_method, tmp_path, 'code')
    stopping = [m for m in map(CONSOLE_LINE.match, lines) if m and m['message'] == STOPPING]
    assert len(stopping) == 1, lines
    assert (stopping[0]['actor'], int(stopping[0]['pid'])) == ('worker', worker_pid)


@trio_parent_test(timeout=40)
async def test_an_app_that_configures_nothing_sees_nothing(start_method, tmp_path):
    _root_pid, _worker_pid, lines = await _run(start_method, tmp_path, 'none')
    assert lines == []


def _fresh(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in script_env('trio').items() if k != 'TRACTOR_SUBINT_LOG'}
    return subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
        env={**environ, **env}, timeout=30,
    )


def test_warnings_do_not_reach_stderr_through_the_last_resort_handler():
    done = _fresh('''
        from tractor_subint.log import get_logger
        get_logger('runtime').warning('kill ladder: SIGKILL')
        print('ok')
    ''')
    assert (done.returncode, done.stdout, done.stderr) == (0, 'ok\n', '')


def test_a_bad_level_in_the_environment_warns_and_leaves_the_console_off():
    done = _fresh('''
        from tractor_subint.log import console_level
        print(console_level())
    ''', TRACTOR_SUBINT_LOG='loud')
    assert done.returncode == 0, done.stderr
    assert done.stdout == 'None\n'
    assert "RuntimeWarning: $TRACTOR_SUBINT_LOG ignored: 'loud' is not a logging level" in done.stderr


def test_one_logger_per_layer_under_the_package_logger():
    package = _log.get_logger()
    assert any(isinstance(h, logging.NullHandler) for h in package.handlers)
    for layer in ('runtime', 'spawn'):
        logger = _log.get_logger(layer)
        assert logger.name == f'tractor_subint.{layer}'
        assert logger.parent is package
    assert _log.get_logger('tractor_subint.spawn') is _log.get_logger('spawn')


def test_the_boot_spec_carries_the_console_level():
    spec = BootSpec('a', ('a', 'f' * 32), ['m'], 'trio', ['/x'], log_level='DEBUG')
    assert BootSpec.from_bytes(spec.to_bytes()).log_level == 'DEBUG'


@pytest.mark.parametrize(
    ('given', 'number'), [('debug', 10), ('INFO', 20), (' warning ', 30), ('5', 5), (40, 40)],
)
def test_level_names_in_any_case_and_numbers(given, number):
    assert _log.level_number(given) == number


def test_the_console_is_idempotent_and_can_be_undone():
    if _log.console_level() is not None:
        pytest.skip('$TRACTOR_SUBINT_LOG turned the console on for this session')
    logger = _log.get_logger()
    before = (list(logger.handlers), logger.level, logger.propagate)
    try:
        first = _log.enable_console('info')
        assert _log.enable_console('debug') is first
        assert _log.console_level() == 'DEBUG'
        assert not logger.propagate
    finally:
        _log.disable_console()
    assert _log.console_level() is None
    assert (list(logger.handlers), logger.level, logger.propagate) == before
