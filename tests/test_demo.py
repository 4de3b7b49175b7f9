"""``python -m tractor_subint demo``: the first screen a new user sees."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tractor_subint._demo import DEMO_DEFAULT, DORMANT_NOTE, WARMING_NOTE, demo_backend
from tractor_subint.spawn import ENV_VAR, available_start_methods, get_backend

ROW = re.compile(
    r'^  (?P<actor>root|worker-1|worker-2|leaf)\s+(?P<pid>\d+)\s+(?P<interp>main|subinterpreter #\d+)'
    r'(\s+(?P<ms>[\d.]+) ms)?(\s+(?P<note>.*))?$'
)
KNOWN_NOTES = (
    WARMING_NOTE,
    DORMANT_NOTE,
    'spawned by worker-1',
    "spawned by worker-1; started the tree's forkserver first (a nested spawn's first use)",
)


def _demo(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environ['TRACTOR_SUBINT_CHILD_STDIO'] = 'devnull'  # no actor holds our pipes
    for key, value in env.items():
        if value is not None:
            environ[key] = value
    return subprocess.run(
        [sys.executable, '-m', 'tractor_subint', 'demo', *args],
        capture_output=True, text=True, timeout=60, env=environ,
    )


def test_the_demo_names_its_backend_heads_every_column_and_points_elsewhere(start_method):
    done = _demo('--spawn-backend', start_method)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"tractor_subint demo: spawn backend {start_method!r}")
    assert lines[1].strip() == get_backend(start_method).description
    assert lines[2].split() == ['actor', 'pid', 'interpreter', 'spawned', 'in', 'note']
    rows = {m['actor']: m for m in map(ROW.match, lines[3:7]) if m}
    assert list(rows) == ['root', 'worker-1', 'worker-2', 'leaf'], lines
    assert all(rows[a]['ms'] for a in ('worker-1', 'worker-2', 'leaf'))
    assert all((rows[a]['note'] or '') in ('', *KNOWN_NOTES) for a in rows), lines
    assert rows['leaf']['note'].startswith('spawned by worker-1')
    pids = {rows[a]['pid'] for a in rows}
    shared = f"({start_method!r} actors are subinterpreters of the root's own process: they share its pid)"
    if get_backend(start_method).in_process:
        assert len(pids) == 1 and f'  {shared}' in lines
    else:
        assert len(pids) == 4 and shared not in done.stdout
    if start_method == 'subint_forkserver':
        # The leaf is this tree's first nested spawn: through the forkserver, which it starts.
        assert "started the tree's forkserver first" in rows['leaf']['note']
    others = [key for key in available_start_methods() if key != start_method]
    assert f'KEY one of {", ".join(others)}.' in done.stdout
    assert 'python -m tractor_subint bench --quick' in done.stdout


@pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint', reason='which backend the demo picks: once',
)
def test_without_a_choice_the_demo_says_which_backend_it_picked_and_why():
    key, why = demo_backend()
    assert key == (DEMO_DEFAULT if DEMO_DEFAULT in available_start_methods() else 'trio')
    done = _demo()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f'tractor_subint demo: spawn backend {key!r} ({why}), Python ')


@pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint', reason='usage errors spawn nothing',
)
@pytest.mark.parametrize(('args', 'env', 'prefix'), [
    ((), 'bogus', f"${ENV_VAR}: unknown spawn method 'bogus'"),
    (('--spawn-backend', 'bogus'), None, "--spawn-backend: unknown spawn method 'bogus'"),
    (('--spawn-backend', 'subint_fork'), None, "--spawn-backend: spawn method 'subint_fork' is"),
])
def test_a_bad_key_is_a_usage_error_not_a_traceback(args, env, prefix):
    done = _demo(*args, **{ENV_VAR: env})
    assert done.returncode == 2
    assert 'Traceback' not in done.stderr
    assert len(done.stderr.splitlines()) == 2, done.stderr  # usage, then the error
    error = done.stderr.splitlines()[1]
    assert error.startswith(f'python -m tractor_subint: error: {prefix}'), error
    assert f'usable: {", ".join(available_start_methods())}' in error
