"""pytest plugin: choose the spawn backend, and leave no process behind.

Opt-in: ``pytest -p tractor_subint.testing.pytest_plugin`` (or that in
``addopts``, as this project's ``pyproject.toml`` does) gives:

``--spawn-backend=KEY``
    The spawn method for the session (default ``trio``). A key that is
    unknown, reserved or unsupported on this Python/platform is a usage
    error naming the usable ones. The key is selected with
    :func:`~tractor_subint.spawn.try_set_start_method` and exported in
    ``$TRACTOR_SUBINT_SPAWN_METHOD`` so that processes the tests start
    inherit it.

``start_method`` / ``spawn_backend`` fixtures
    The selected key (session scope; the two names are aliases).

``@pytest.mark.skipon_spawn_backend(*keys, reason=...)``
    Skip a test when the selected backend is one of ``keys``. A key that is
    not one of ours (upstream tractor's ``'mp_spawn'``, in a test shared with
    upstream's suite; or a typo) never matches here, and is reported with a
    :class:`UnknownSpawnKeyWarning`; the session goes on.

``@pytest.mark.needs_own_process(reason=...)``
    Skip a test when the selected backend runs actors inside the spawning
    process (:attr:`Backend.in_process <tractor_subint.spawn.Backend.in_process>`):
    for tests whose actor ends its process (``os._exit``, a crash), which
    would end pytest with it.

Warm pools
    A process keeps its warm pools beyond any nursery (they close when
    idle, or at exit). After each test, the test process's pools are closed
    (their idle members killed and reaped): no test inherits another's.

Process hygiene (on by default; ``--no-proc-check`` or the ini option
``tractor_subint_proc_check = false`` turns the checks off)
    The session becomes a subreaper, so orphans of any test's processes
    come back to pytest. After each test, any descendant (live or zombie)
    that the test started is killed, reaped and reported as a teardown
    error; under an in-process backend, so is any subinterpreter the test
    left alive in pytest's own process. At session end, any descendant
    still there is killed, reaped and reported, and the run fails.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from tractor_subint.spawn import (
    DEFAULT_METHOD,
    ENV_VAR,
    available_start_methods,
    close_local_pools,
    get_backend,
    live_subinterpreters,
    registered_backends,
    reset_start_method,
    selected_start_method,
    try_set_start_method,
    unusable_reason,
)
from tractor_subint.testing._procs import ProcInfo, become_subreaper, descendants, is_subreaper

MARKER = 'skipon_spawn_backend'
OWN_PROCESS_MARKER = 'needs_own_process'
INI_PROC_CHECK = 'tractor_subint_proc_check'

# How long a sweep keeps killing and reaping before it reports what is left.
_SWEEP_TIMEOUT = 5.0

_backend_key = pytest.StashKey[str]()
_proc_check_key = pytest.StashKey[bool]()
# What pytest_configure changed in this process, so pytest_unconfigure can put
# it back (matters when pytest runs in-process more than once, e.g. pytester).
_saved_env_key = pytest.StashKey['str | None']()
_saved_method_key = pytest.StashKey['str | None']()
_made_subreaper_key = pytest.StashKey[bool]()
# Set once pytest_sessionfinish begins; what the per-test check finds from
# then on goes to the session-end report.
_finishing_key = pytest.StashKey[bool]()
_late_reports_key = pytest.StashKey['list[str]']()
_preexisting_key = pytest.StashKey['set[int]']()
_unknown_keys_key = pytest.StashKey['list[str]']()


UPSTREAM_PLUGIN = 'tractor._testing.pytest'


class UnknownSpawnKeyWarning(pytest.PytestWarning):
    """A ``skipon_spawn_backend`` key that is not a spawn method of ours: it
    never matches, so the marker cannot skip for it."""

    __module__ = 'tractor_subint.testing.pytest_plugin'


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    if pluginmanager.has_plugin(UPSTREAM_PLUGIN):
        raise pytest.UsageError(
            f'tractor_subint.testing.pytest_plugin and upstream tractor\'s plugin '
            f'({UPSTREAM_PLUGIN}) both define --spawn-backend; to run upstream\'s suite '
            f'with our backends, load -p tractor_subint.upstream.plugin instead'
        )
    group = parser.getgroup('tractor_subint', 'tractor_subint spawn backends')
    group.addoption(
        '--spawn-backend',
        dest='spawn_backend',
        default=DEFAULT_METHOD,
        metavar='KEY',
        help=(
            f'spawn method for this session (default: {DEFAULT_METHOD}); '
            f'one of: {", ".join(available_start_methods())}'
        ),
    )
    group.addoption(
        '--no-proc-check',
        dest='proc_check',
        action='store_false',
        default=None,
        help=(
            'do not fail tests, or the session, that leave processes behind '
            f'(overrides the {INI_PROC_CHECK} ini option)'
        ),
    )
    parser.addini(
        INI_PROC_CHECK,
        'fail tests and the session when they leave processes behind (default: true)',
        type='bool',
        default=True,
    )


def _registered_keys() -> str:
    return ', '.join(backend.key for backend in registered_backends())


def _select_backend(key: str) -> str:
    reason = unusable_reason(key)
    if reason is not None:
        raise pytest.UsageError(
            f'--spawn-backend={key}: {reason}; usable keys on this Python/platform: '
            f'{", ".join(available_start_methods())}'
        )
    try:
        return try_set_start_method(key)
    except (ValueError, RuntimeError) as exc:  # the registry disagrees with unusable_reason
        raise pytest.UsageError(f'--spawn-backend={key}: {exc}') from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        'markers',
        f'{MARKER}(*keys, reason=None): skip the test when the selected '
        f'--spawn-backend is one of keys (known keys: {_registered_keys()})',
    )
    config.addinivalue_line(
        'markers',
        f'{OWN_PROCESS_MARKER}(reason=None): skip the test when the selected '
        '--spawn-backend runs actors inside the spawning process',
    )

    config.stash[_saved_method_key] = selected_start_method()
    config.stash[_saved_env_key] = os.environ.get(ENV_VAR)
    key = _select_backend(config.getoption('spawn_backend'))
    config.stash[_backend_key] = key
    os.environ[ENV_VAR] = key

    enabled = config.getoption('proc_check')
    if enabled is None:
        enabled = config.getini(INI_PROC_CHECK)
    config.stash[_proc_check_key] = bool(enabled) and _can_list_processes()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _backend_key not in config.stash:
        return  # pytest_configure failed before selecting a backend
    saved_method = config.stash[_saved_method_key]
    if saved_method is None:
        reset_start_method()
    else:
        try_set_start_method(saved_method)
    saved_env = config.stash[_saved_env_key]
    if saved_env is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = saved_env
    if config.stash.get(_made_subreaper_key, False):
        become_subreaper(False)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.stash[_proc_check_key]:
        check = 'on (pytest is a subreaper; checked per test and at session end)'
    elif not _can_list_processes():
        check = 'off (no /proc on this platform)'
    else:
        check = 'off'
    return [
        f'spawn backend: {config.stash[_backend_key]} '
        f'(usable: {", ".join(available_start_methods())})',
        f'process check: {check}',
    ]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Make pytest a subreaper: orphans of any test's processes become ours,
    so the checks see them and they can be reaped.

    Done even with the checks off: tests may rely on getting orphans back.
    """
    config = session.config
    # Not ours to judge: what this process ran before the session began (an
    # outer session's processes, when pytest runs in-process, e.g. pytester).
    config.stash[_preexisting_key] = (
        {info.pid for info in descendants()} if config.stash[_proc_check_key] else set()
    )
    if is_subreaper():
        return  # already one (an outer pytest run in this process made it so)
    ok = become_subreaper()
    config.stash[_made_subreaper_key] = ok
    if not ok and config.stash[_proc_check_key]:
        raise pytest.UsageError(
            'process check: cannot make pytest a subreaper '
            '(prctl(PR_SET_CHILD_SUBREAPER) failed); pass --no-proc-check '
            'to run without the check'
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.stash[_backend_key]
    errors: list[str] = []
    known = {backend.key for backend in registered_backends()}
    for item in items:
        for mark in item.iter_markers(MARKER):
            problem = _marker_problem(mark)
            if problem is not None:
                errors.append(f'{item.nodeid}: @pytest.mark.{MARKER}{problem}')
                continue
            unknown = [key for key in mark.args if key not in known]
            if unknown:
                item.stash.setdefault(_unknown_keys_key, []).extend(unknown)
            if backend in mark.args:
                reason = mark.kwargs.get('reason')
                text = f'skipped on spawn backend {backend!r}'
                item.add_marker(pytest.mark.skip(reason=f'{text}: {reason}' if reason else text))
        own = item.get_closest_marker(OWN_PROCESS_MARKER)
        if own is not None and get_backend(backend).in_process:
            reason = own.kwargs.get('reason')
            text = f'spawn backend {backend!r} runs actors in this process'
            item.add_marker(pytest.mark.skip(reason=f'{text}: {reason}' if reason else text))
    if errors:
        raise pytest.UsageError(
            '\n'.join(errors) + f'\nknown spawn method keys: {_registered_keys()}'
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Warned here, not at collection: a warning is then the test's own (with
    # filterwarnings=error it fails this test, not the whole session).
    for key in item.stash.get(_unknown_keys_key, []):
        item.warn(UnknownSpawnKeyWarning(
            f'@pytest.mark.{MARKER}({key!r}): not a spawn method key of tractor_subint, so it never '
            f'matches here (a key of upstream tractor, or a typo?); ours: {_registered_keys()}'
        ))


def _marker_problem(mark: pytest.Mark) -> str | None:
    if not mark.args:
        return '() needs at least one spawn method key'
    unexpected = set(mark.kwargs) - {'reason'}
    if unexpected:
        return f': unexpected keyword argument(s) {", ".join(sorted(unexpected))}'
    strays = [key for key in mark.args if not isinstance(key, str)]
    if strays:
        return f': spawn method keys are strings, not {strays[0]!r}'
    return None


@pytest.fixture(scope='session')
def start_method(pytestconfig: pytest.Config) -> str:
    """The spawn method selected by ``--spawn-backend``."""
    return pytestconfig.stash[_backend_key]


@pytest.fixture(scope='session')
def spawn_backend(start_method: str) -> str:
    """Alias of :func:`start_method`."""
    return start_method


@pytest.fixture(autouse=True)
def _no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves a descendant process (live or zombie).

    Processes that were already there when the test began (started by a
    session-, module- or class-scoped fixture) are not the test's; the
    session-end check covers them.
    """
    config = request.config
    if not config.stash[_proc_check_key]:
        yield
        close_local_pools()
        return
    in_process = get_backend(config.stash[_backend_key]).in_process
    before = {info.pid for info in descendants()}
    interpreters_before = set(live_subinterpreters()) if in_process else set()
    yield
    close_local_pools()  # the process's warm pools: kept beyond the test's nurseries
    processes = _kill_and_reap(exclude=before)
    interpreters = [
        f'subinterpreter {interp_id} (alive in pytest\'s own process)'
        for interp_id in sorted(set(live_subinterpreters()) - interpreters_before)
    ] if in_process else []
    left = processes + interpreters
    if not left:
        return
    if config.stash.get(_finishing_key, False):
        # Torn down by pytest_sessionfinish (the run was interrupted or
        # stopped mid-test): raising here would be an internal error, so
        # the session-end check reports these.
        config.stash[_late_reports_key].extend(
            f'{line}  (left by {request.node.nodeid})' for line in left
        )
        return
    # pytrace=False: the report is the list, not this fixture's source.
    pytest.fail(_leak_report(processes, interpreters), pytrace=False)


def _leak_report(processes: list[str], interpreters: list[str]) -> str:
    lines = []
    if processes:
        lines += ['test left processes behind (now killed and reaped):', *(f'  {p}' for p in processes)]
    if interpreters:
        lines += [
            "test left subinterpreters alive in pytest's own process (nothing can kill them):",
            *(f'  {i}' for i in interpreters),
        ]
    return '\n'.join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """Fail the run if any process of ours is still around at the end.

    A wrapper, so the check runs after every fixture is torn down (pytest
    tears down what is left in its own pytest_sessionfinish), and before the
    terminal summary.
    """
    config = session.config
    config.stash[_finishing_key] = True
    config.stash[_late_reports_key] = []
    try:
        return (yield)
    finally:
        if config.stash.get(_proc_check_key, False):
            _session_end_check(session)


def _session_end_check(session: pytest.Session) -> None:
    config = session.config
    left = config.stash[_late_reports_key] + _kill_and_reap(
        exclude=config.stash.get(_preexisting_key, set())
    )
    if not left:
        return
    lines = ['processes of this session still alive at its end (now killed and reaped):']
    lines += [f'  {line}' for line in left]
    reporter = config.pluginmanager.get_plugin('terminalreporter')
    if reporter is not None:
        reporter.ensure_newline()
        reporter.section('process check', sep='=', red=True, bold=True)
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print('\n'.join(lines), file=sys.stderr)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _kill_and_reap(exclude: set[int]) -> list[str]:
    """SIGKILL and reap every descendant whose pid is not in ``exclude``.

    Goes on until none is left (children they fork meanwhile included) or
    ``_SWEEP_TIMEOUT`` passes. A zombie whose parent is spared (in
    ``exclude``) is that parent's to reap, not ours. Returns one line per
    process found, as first seen, marking any that outlived the sweep.
    """
    found: dict[int, ProcInfo] = {}
    deadline = time.monotonic() + _SWEEP_TIMEOUT
    while True:
        current = [
            info for info in descendants()
            if info.pid not in exclude and not (info.is_zombie and info.ppid in exclude)
        ]
        for info in current:
            found.setdefault(info.pid, info)
        if not current or time.monotonic() > deadline:
            break
        for info in current:
            if not info.is_zombie:
                try:
                    os.kill(info.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for info in current:
            try:
                os.waitpid(info.pid, os.WNOHANG)
            except ChildProcessError:
                pass  # not (yet) our child: re-parented to us once its parent dies
        time.sleep(0.005)
    survivors = {info.pid for info in current}
    return [
        f'{info}' + (' [STILL THERE after SIGKILL]' if pid in survivors else '')
        for pid, info in sorted(found.items())
    ]


def _can_list_processes() -> bool:
    return os.path.isdir('/proc/self/task')
