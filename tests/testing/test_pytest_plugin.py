"""The pytest plugin (``tractor_subint.testing.pytest_plugin``).

Each case runs pytest in a fresh subprocess on a generated test file; the
inner run opts in to the plugin the way users do (``-p`` in its addopts).
After every inner run, this process (a subreaper, thanks to the same
plugin) checks that nothing the inner run started is still around.
"""
from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest

from tractor_subint.spawn._spawn import ENV_VAR, available_start_methods, unusable_reason
from tractor_subint.testing import descendants

INNER_TIMEOUT = 60
PLUGIN = 'tractor_subint.testing.pytest_plugin'
WORKING_KEYS = ('trio', 'main_thread_forkserver', 'subint_forkserver', 'subint')


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs are as strict as ours: warnings are errors."""
    pytester.makeini(
        f"""
        [pytest]
        addopts = -p no:cacheprovider -p {PLUGIN}
        filterwarnings = error
        """
    )
    return pytester


def run(pytester: pytest.Pytester, *args: str, leftovers_expected: bool = False):
    """Run pytest in a subprocess; check it left nothing behind (unless told
    it will, then return what it left: it comes back to us as orphans)."""
    before = {info.pid for info in descendants()}
    result = pytester.runpytest_subprocess(*args, timeout=INNER_TIMEOUT)
    left = [info for info in descendants() if info.pid not in before]
    if leftovers_expected:
        return result, left
    assert not left, f'the inner pytest run left processes behind: {left}'
    return result


def read_pids(path) -> list[int]:
    return [int(line) for line in path.read_text().split()]


def assert_gone(pids: list[int]) -> None:
    assert pids, 'the inner run never recorded its processes'
    alive = [pid for pid in pids if os.path.exists(f'/proc/{pid}')]
    assert not alive, f'still in /proc: {alive}'


# opt-in ------------------------------------------------------------------------

def test_the_plugin_is_off_unless_asked_for(pytester):
    pytester.makeini('[pytest]\naddopts = -p no:cacheprovider\n')
    pytester.makepyfile(
        """
        import ctypes

        def test_not_a_subreaper():
            flag = ctypes.c_int(0)
            ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0)
            assert flag.value == 0
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line('spawn backend:*')
    result = run(pytester, '--spawn-backend=trio')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*unrecognized arguments: --spawn-backend=trio*'])


def test_beside_upstream_tractor_s_plugin_it_says_what_to_load(inner):
    # A stand-in for upstream's plugin, which defines --spawn-backend too.
    inner.mkpydir('tractor')
    inner.mkpydir('tractor/_testing')
    (inner.path / 'tractor/_testing/pytest.py').write_text(
        'def pytest_addoption(parser):\n'
        "    parser.addoption('--spawn-backend', default='trio')\n"
    )
    inner.makeini(
        f'[pytest]\naddopts = -p no:cacheprovider -p tractor._testing.pytest -p {PLUGIN}\n'
    )
    inner.makepyfile('def test_never_runs(): raise AssertionError')
    result = run(inner)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*both define --spawn-backend*-p tractor_subint.upstream.plugin*'])


# --spawn-backend ------------------------------------------------------------

def test_usable_keys_are_the_working_backends():
    assert available_start_methods() == WORKING_KEYS


def test_default_backend_is_trio(inner):
    inner.makepyfile(
        f"""
        import os
        from tractor_subint.spawn._spawn import current_start_method

        def test_default(start_method, spawn_backend):
            assert start_method == spawn_backend == 'trio'
            assert current_start_method() == 'trio'
            assert os.environ[{ENV_VAR!r}] == 'trio'
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        'spawn backend: trio (usable: trio, main_thread_forkserver, subint_forkserver, subint)',
        'process check: on *',
    ])
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize('key', WORKING_KEYS)
def test_chosen_backend_reaches_fixtures_registry_and_subprocesses(inner, monkeypatch, key):
    if unusable_reason(key):
        pytest.skip(unusable_reason(key))
    # Start from a different value in the environment: the option must win.
    other = 'trio' if key != 'trio' else 'subint_forkserver'
    monkeypatch.setenv(ENV_VAR, other)
    inner.makepyfile(
        f"""
        import os, subprocess, sys
        from tractor_subint.spawn._spawn import current_start_method

        def test_start_method(start_method, spawn_backend, monkeypatch):
            assert start_method == spawn_backend == {key!r}
            # selected in this process, not merely read from the environment
            monkeypatch.setenv({ENV_VAR!r}, {other!r})
            assert current_start_method() == {key!r}

        def test_env_var_is_exported_to_subprocesses():
            out = subprocess.run(
                [sys.executable, '-c', "import os; print(os.environ[{ENV_VAR!r}])"],
                capture_output=True, text=True, check=True,
            ).stdout
            assert out.strip() == {key!r}
        """
    )
    result = run(inner, f'--spawn-backend={key}')
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f'spawn backend: {key} (usable: *)'])


def test_unknown_key_is_a_usage_error_naming_the_usable_keys(inner):
    inner.makepyfile('def test_never_runs(): raise AssertionError')
    result = run(inner, '--spawn-backend=mp_forkserver')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*--spawn-backend=mp_forkserver: unknown spawn method 'mp_forkserver'; "
        'usable keys on this Python/platform: trio, main_thread_forkserver, subint_forkserver, subint',
    ])
    result.stdout.no_fnmatch_line('*test_never_runs*')


@pytest.mark.parametrize(('key', 'why'), [
    ('subint_fork', 'is a documented dead end'),
])
def test_reserved_key_is_a_usage_error(inner, key, why):
    inner.makepyfile('def test_never_runs(): raise AssertionError')
    result = run(inner, f'--spawn-backend={key}')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"*--spawn-backend={key}: spawn method '{key}' {why}*; "
        'usable keys on this Python/platform: trio, main_thread_forkserver, subint_forkserver, subint',
    ])


def test_unsupported_key_is_a_usage_error(inner):
    # A platform without fork: the conftest is imported before the plugin's
    # pytest_configure checks the option.
    inner.makeconftest('import os\ndel os.fork\n')
    inner.makepyfile('def test_never_runs(): raise AssertionError')
    result = run(inner, '--spawn-backend=main_thread_forkserver')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*--spawn-backend=main_thread_forkserver: 'main_thread_forkserver' needs os.fork()*; "
        'usable keys on this Python/platform: trio, subint',
    ])


# skipon_spawn_backend -------------------------------------------------------

SKIPON = """
    import pytest

    @pytest.mark.skipon_spawn_backend('main_thread_forkserver', 'subint', reason='no forkserver here')
    def test_marked():
        pass

    @pytest.mark.skipon_spawn_backend('subint_forkserver')
    def test_marked_without_reason():
        pass

    @pytest.mark.skipon_spawn_backend('main_thread_forkserver', reason='class-wide')
    class TestClass:
        def test_in_class(self):
            pass

    def test_unmarked():
        pass
"""


@pytest.mark.parametrize(('key', 'skipped'), [
    ('trio', []),
    ('main_thread_forkserver', [
        "SKIPPED [[]1[]] *: skipped on spawn backend 'main_thread_forkserver': class-wide",
        "SKIPPED [[]1[]] *: skipped on spawn backend 'main_thread_forkserver': no forkserver here",
    ]),
    ('subint_forkserver', [
        "SKIPPED [[]1[]] *: skipped on spawn backend 'subint_forkserver'",
    ]),
])
def test_skipon_spawn_backend_skips_only_the_named_backends(inner, key, skipped):
    inner.makepyfile(SKIPON)
    result = run(inner, f'--spawn-backend={key}', '-rs', '--strict-markers')
    result.assert_outcomes(passed=4 - len(skipped), skipped=len(skipped))
    if skipped:
        result.stdout.fnmatch_lines_random(skipped)
    else:
        result.stdout.no_fnmatch_line('SKIPPED*')


OWN_PROCESS = """
    import os
    import _interpreters
    import pytest

    @pytest.mark.needs_own_process(reason='its actor ends its process')
    def test_marked():
        os._exit(3)  # would end this pytest run in-process

    def test_unmarked():
        pass

    def test_leaves_a_subinterpreter():
        _interpreters.create()
"""


@pytest.mark.parametrize(('key', 'in_process'), [('trio', False), ('subint', True)])
def test_needs_own_process_skips_under_in_process_backends_which_also_count_interpreters(
    inner, key, in_process,
):
    inner.makepyfile(OWN_PROCESS)
    selection = '' if in_process else 'not test_marked'
    result = run(inner, f'--spawn-backend={key}', '-rs', '--strict-markers', '-k', selection)
    if in_process:
        result.assert_outcomes(passed=2, skipped=1, errors=1)
        result.stdout.fnmatch_lines_random([
            "SKIPPED [[]1[]] *: spawn backend 'subint' runs actors in this process: its actor ends*",
            '*subinterpreter * (alive in pytest*s own process)*',
            "test left subinterpreters alive in pytest*s own process (nothing can kill them):",
        ])
        result.stdout.no_fnmatch_line('*killed and reaped*')
    else:  # not run: it would end the run; the left subinterpreter is not counted
        result.assert_outcomes(passed=2, deselected=1)


@pytest.mark.parametrize(('args', 'problem'), [
    ("'trio', 3", 'spawn method keys are strings, not 3'),
    ('', '() needs at least one spawn method key'),
    ("'trio', reasn='typo'", 'unexpected keyword argument(s) reasn'),
])
def test_skipon_spawn_backend_rejects_bad_arguments(inner, args, problem):
    inner.makepyfile(
        f"""
        import pytest

        @pytest.mark.skipon_spawn_backend({args})
        def test_bad_marker():
            raise AssertionError

        def test_fine():
            raise AssertionError
        """
    )
    # Under another backend too: the keys are checked whatever is selected.
    result = run(inner, '--spawn-backend=subint_forkserver')
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f'ERROR: test_skipon_spawn_backend_rejects_bad_arguments.py::test_bad_marker: '
        f'@pytest.mark.skipon_spawn_backend*{problem}',
        'known spawn method keys: trio, main_thread_forkserver, subint_forkserver, subint, subint_fork',
    ])
    result.stdout.no_fnmatch_line('*AssertionError*')


UPSTREAM_KEY = """
    import pytest

    @pytest.mark.skipon_spawn_backend('mp_spawn', reason='upstream tractor only')
    def test_shared_with_upstream():
        pass

    @pytest.mark.skipon_spawn_backend('trio', 'mp_forkserver')
    def test_partly_upstream():
        pass

    def test_plain():
        pass
"""


@pytest.mark.parametrize('filterwarnings', ['default', 'error'])
def test_a_key_registered_elsewhere_warns_and_the_session_goes_on(inner, filterwarnings):
    inner.makepyfile(UPSTREAM_KEY)
    result = run(inner, '--spawn-backend=subint_forkserver', '-W', filterwarnings, '-ra')
    warning = (
        "*UnknownSpawnKeyWarning: @pytest.mark.skipon_spawn_backend('mp_spawn'): not a spawn method key "
        'of tractor_subint, so it never matches here (a key of upstream tractor, or a typo?); ours: trio, *'
    )
    if filterwarnings == 'default':
        result.assert_outcomes(passed=3, warnings=2)
        result.stdout.fnmatch_lines([warning])
        result.stdout.fnmatch_lines(["*skipon_spawn_backend('mp_forkserver')*"])
    else:  # the warning fails its own test, and only that one
        result.assert_outcomes(passed=1, errors=2)
        result.stdout.fnmatch_lines_random([
            '*ERROR at setup of test_shared_with_upstream*',
            '*ERROR at setup of test_partly_upstream*',
            "E *UnknownSpawnKeyWarning: @pytest.mark.skipon_spawn_backend('mp_spawn'): *",
            "E *UnknownSpawnKeyWarning: @pytest.mark.skipon_spawn_backend('mp_forkserver'): *",
        ])
    # A key of ours among them still skips.
    result = run(inner, '--spawn-backend=trio', '-W', 'default', '-rs')
    result.assert_outcomes(passed=2, skipped=1, warnings=1)


# process hygiene ------------------------------------------------------------


def test_a_leak_report_is_the_list_not_the_plugin_s_source(inner):
    inner.makepyfile(
        """
        import os

        def test_leaks():
            os.posix_spawnp('sleep', ['sleep', '3605'], os.environ)
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=1, errors=1)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if 'ERROR at teardown of test_leaks' in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith(('___', '===')))
    report = lines[start + 1:end]
    assert len(report) <= 4, '\n'.join(report)
    assert report[0] == 'test left processes behind (now killed and reaped):', report
    assert report[1].startswith('  pid=') and report[1].endswith("'sleep 3605'")
    assert not [line for line in report if 'def ' in line or 'pytest_plugin.py' in line], report

def test_tests_that_leave_processes_behind_fail(inner):
    pids = inner.path / 'pids'
    inner.makepyfile(
        f"""
        import os, subprocess, time

        def record(*pids):
            with open({str(pids)!r}, 'a') as f:
                f.write(''.join(f'{{pid}}\\n' for pid in pids))

        def is_zombie(pid):
            with open(f'/proc/{{pid}}/stat') as f:
                return f.read().rsplit(')', 1)[1].split()[0] == 'Z'

        def exec_done(pid):
            # sh forks, then the child execs sleep: wait for the exec, so
            # the report shows 'sleep ...'
            while not open_read(f'/proc/{{pid}}/cmdline').startswith('sleep'):
                time.sleep(0.01)
            return pid

        def open_read(path):
            with open(path) as f:
                return f.read()

        def test_live_child():
            record(os.posix_spawnp('sleep', ['sleep', '3601'], os.environ))

        def test_zombie_child():
            pid = os.posix_spawnp('true', ['true'], os.environ)
            record(pid)
            while not is_zombie(pid):
                time.sleep(0.01)

        def test_orphaned_grandchild():
            # sh exits at once; its background sleep is orphaned, and comes
            # back to pytest because the plugin made it a subreaper.
            out = subprocess.run(
                ['sh', '-c', 'sleep 3602 >/dev/null 2>&1 & echo $!'],
                capture_output=True, text=True, check=True,
            ).stdout
            record(exec_done(int(out)))
            with open('pytest.pid', 'w') as f:
                f.write(str(os.getpid()))

        def test_child_with_a_child():
            out = subprocess.Popen(
                ['sh', '-c', 'sleep 3603 >/dev/null 2>&1 & echo $!; wait'],
                stdout=subprocess.PIPE, text=True,
            )
            record(out.pid, exec_done(int(out.stdout.readline())))
            out.stdout.close()
            out.returncode = 0  # keep Popen.__del__ quiet: the check reaps it

        def test_clean():
            subprocess.run(['sleep', '0'], check=True)
        """
    )
    result = run(inner)
    result.assert_outcomes(passed=5, errors=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    inner_pid = (inner.path / 'pytest.pid').read_text()
    result.stdout.fnmatch_lines_random([
        '*ERROR at teardown of test_live_child*',
        '*ERROR at teardown of test_zombie_child*',
        '*ERROR at teardown of test_orphaned_grandchild*',
        '*ERROR at teardown of test_child_with_a_child*',
        "  pid=* state=? 'sleep 3601'",
        '  pid=* state=Z (zombie: exited, not reaped) *',
        f"  pid=* ppid={inner_pid} state=? 'sleep 3602'",
        "  pid=* state=? 'sleep 3603'",
        "  pid=* state=? 'sh -c sleep 3603 *",
    ])
    result.stdout.no_fnmatch_line('*test_clean*')
    result.stdout.no_fnmatch_line('*= process check =*')  # the per-test check got all
    assert_gone(read_pids(pids))


def session_sleeper_source(pids, extra: str = '') -> str:
    """A test file whose session-scoped fixture starts a sleeper and never
    kills nor reaps it; two tests use it. ``extra`` is appended."""
    return textwrap.dedent(
        f"""
        import os, pytest

        @pytest.fixture(scope='session')
        def sleeper():
            pid = os.posix_spawnp('sleep', ['sleep', '3604'], os.environ)
            with open({str(pids)!r}, 'a') as f:
                f.write(f'{{pid}}\\n')
            yield pid

        def test_one(sleeper):
            assert os.path.exists(f'/proc/{{sleeper}}')

        def test_two(sleeper):
            assert os.path.exists(f'/proc/{{sleeper}}')
        """
    ) + textwrap.dedent(extra)


SESSIONFINISH_SLEEPER = """
    import os

    def pytest_sessionfinish(session):
        pid = os.posix_spawnp('sleep', ['sleep', '3604'], os.environ)
        with open({pids!r}, 'a') as f:
            f.write(f'{{pid}}\\n')
"""


@pytest.mark.parametrize('where', ['session_fixture', 'sessionfinish_hook'])
def test_session_end_check_fails_the_run(inner, where):
    pids = inner.path / 'pids'
    if where == 'session_fixture':
        inner.makepyfile(session_sleeper_source(pids))
    else:
        # A conftest's hook runs inside the plugin's hook wrapper, so before
        # its session-end check.
        inner.makeconftest(SESSIONFINISH_SLEEPER.format(pids=str(pids)))
        inner.makepyfile('def test_one(): pass\ndef test_two(): pass\n')
    result = run(inner)
    # Both tests pass: a process that was there before a test began is not
    # that test's leak. The session-end check catches it.
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        '*= process check =*',
        'processes of this session still alive at its end (now killed and reaped):',
        "  pid=* state=? 'sleep 3604'",
    ])
    assert_gone(read_pids(pids))


def test_session_end_check_turns_no_tests_into_a_failure(inner):
    pids = inner.path / 'pids'
    inner.makeconftest(SESSIONFINISH_SLEEPER.format(pids=str(pids)))
    result = run(inner)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(['*= process check =*', "  pid=* state=? 'sleep 3604'"])
    assert_gone(read_pids(pids))


@pytest.mark.parametrize(('stop', 'ret'), [
    ('pytest.exit("stop here", returncode=3)', 3),
    ('raise KeyboardInterrupt', pytest.ExitCode.INTERRUPTED),
])
def test_a_stopped_run_still_reaps_and_keeps_its_exit_status(inner, stop, ret):
    # The stopping test's fixtures are torn down in pytest_sessionfinish, so
    # the per-test check cannot fail the test: the session-end check reports.
    pids = inner.path / 'pids'
    inner.makepyfile(
        f"""
        import os, pytest

        def test_leaks_then_stops():
            pid = os.posix_spawnp('sleep', ['sleep', '3607'], os.environ)
            with open({str(pids)!r}, 'a') as f:
                f.write(f'{{pid}}\\n')
            {stop}

        def test_never_runs():
            raise AssertionError
        """
    )
    result = run(inner)
    assert result.ret == ret
    result.stdout.fnmatch_lines([
        '*= process check =*',
        'processes of this session still alive at its end (now killed and reaped):',
        "  pid=* state=? 'sleep 3607'  (left by *::test_leaks_then_stops)",
    ])
    assert 'INTERNALERROR' not in result.stdout.str() + result.stderr.str()
    result.stdout.no_fnmatch_line('*test_never_runs*')
    assert_gone(read_pids(pids))


@pytest.mark.parametrize('how', ['--no-proc-check', 'ini'])
def test_checks_can_be_turned_off(inner, how):
    pids = inner.path / 'pids'
    inner.makepyfile(session_sleeper_source(pids, f"""
        def test_leaks():
            pid = os.posix_spawnp('sleep', ['sleep', '3605'], os.environ)
            with open({str(pids)!r}, 'a') as f:
                f.write(f'{{pid}}\\n')
    """))
    args: tuple[str, ...] = (how,)
    if how == 'ini':
        inner.makeini(
            f"""
            [pytest]
            addopts = -p no:cacheprovider -p {PLUGIN}
            filterwarnings = error
            tractor_subint_proc_check = false
            """
        )
        args = ()
    result, left = run(inner, *args, leftovers_expected=True)
    try:
        result.assert_outcomes(passed=3)
        assert result.ret == pytest.ExitCode.OK
        result.stdout.fnmatch_lines(['process check: off'])
        # The inner run did leave both sleepers; they came back to us (a
        # subreaper) when it exited.
        assert sorted(info.pid for info in left) == sorted(read_pids(pids))
        assert {info.ppid for info in left} == {os.getpid()}
    finally:
        for info in left:
            os.kill(info.pid, signal.SIGKILL)
            try:
                os.waitpid(info.pid, 0)
            except ChildProcessError:  # not ours after all: the assertion above says so
                pass
    assert_gone(read_pids(pids))


def test_this_session_is_a_subreaper():
    # sh exits at once; its background sleep is orphaned and must come back
    # to this process, because the plugin made the session a subreaper.
    out = subprocess.run(
        ['sh', '-c', 'sleep 3606 >/dev/null 2>&1 & echo $!'],
        capture_output=True, text=True, check=True,
    ).stdout
    orphan = int(out)
    try:
        deadline = time.monotonic() + 10
        while not any(info.pid == orphan and info.ppid == os.getpid() for info in descendants()):
            assert time.monotonic() < deadline, 'the orphan was not re-parented to us'
            time.sleep(0.01)
    finally:
        os.kill(orphan, signal.SIGKILL)
        os.waitpid(orphan, 0)
