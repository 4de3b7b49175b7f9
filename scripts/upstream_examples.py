"""Run upstream tractor's example scripts under tractor_subint's own runtime.

Each script is copied from upstream's source tarball to a temporary
directory with one change, the import rename (``import tractor`` becomes
``import tractor_subint as tractor``, ``from tractor... import`` becomes
``from tractor_subint... import``), and run with ``python <script>`` from
its own directory, once per spawn backend, stdin from ``--stdin`` (empty by
default), in a session of its own, killed with its process group after
``--timeout`` seconds.

A script *runs* when it ends the way upstream's own checks expect:

- an example of upstream's ``test_docs_examples`` set exits 0 and the last
  line of its stderr names no error;
- a ``debugging/`` script (upstream drives these from a terminal) is fed
  ``c`` (continue) at 30 prompts, then the end of its input (pdb's quit),
  and must exit with the status and the final errors of
  :data:`DEBUG_EXPECTED`, having opened the REPLs it names.

The scripts themselves are upstream's (AGPL): they are read from the
tarball at run time, never copied into this project.

usage: python scripts/upstream_examples.py [--backends trio,subint] [--only NAME ...]
           [--timeout 30] [--markdown FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TARBALL = REPO.parent / 'shared' / 'upstream' / 'tractor-main-3690e43a.tar.gz'
BACKENDS = ('trio', 'main_thread_forkserver', 'subint_forkserver', 'subint')

NOT_COUNTED = {
    'parallelism/concurrent_futures_primes.py': 'does not use tractor',
    'debugging/debug_mode_hang.py': 'only imports tractor',
}
"""Scripts run but not counted among the 46 (as in the 2026-12-03 research)."""

DEBUG_EXPECTED: dict[str, tuple[int, tuple[str, ...], tuple[str, ...]]] = {
    'debugging/root_actor_error.py': (1, ('AssertionError',), ('root',)),
    'debugging/root_actor_breakpoint.py': (0, (), ('root',)),
    'debugging/root_actor_breakpoint_forever.py': (1, ('BdbQuit',), ('root',)),
    'debugging/subactor_error.py': (1, ('NameError',), ('name_error', 'root')),
    'debugging/subactor_breakpoint.py': (1, ('BdbQuit',), ('breakpoint_forever', 'root')),
    'debugging/multi_subactors.py': (1, ('NameError',), ('breakpoint_forever', 'name_error', 'root')),
    'debugging/multi_daemon_subactors.py': (1, ('NameError',), ('bp_forever', 'name_error', 'root')),
    'debugging/multi_subactor_root_errors.py': (
        1, ('NameError', 'AssertionError'), ('name_error', 'root'),
    ),
    'debugging/multi_nested_subactors_error_up_through_nurseries.py': (
        1, ('BdbQuit',), ('breakpoint_forever', 'root'),
    ),
    'debugging/per_actor_debug.py': (1, ('RuntimeError',), ('debugged_boi',)),
    'debugging/pm_in_subactor.py': (1, ('NameError',), ('child', 'root')),
    'debugging/shielded_pause.py': (0, (), ('cancelled_before_pause', 'root')),
    'debugging/root_timeout_while_child_crashed.py': (1, ('KeyError',), ('key_error', 'root')),
    'debugging/fast_error_in_root_after_spawn.py': (1, ('AssertionError',), ('root',)),
    'debugging/root_cancelled_but_child_is_in_tty_lock.py': (
        1, ('RemoteActorError', 'NameError'), ('name_error', 'root'),
    ),
    # Upstream's tree hangs once the child closes its channel, and its test
    # mashes Ctrl-C; ours ends by itself, naming the closed channel as
    # upstream's test expects ('another task closed this fd').
    'debugging/subactor_bp_in_ctx.py': (1, ('another task closed this fd',), ('bp_boi', 'root')),
}
"""For ``debugging/`` scripts fed ``c`` at every prompt (then end of input,
pdb's quit): the exit status, the errors the end of its stderr names, and
the actors whose REPL must have opened (a prompt naming each on stdout), as
upstream's ``tests/devx/test_debugger.py`` expects them: a script whose
child never got its REPL has not run, however it ended. The scripts not
listed need APIs the runtime does not have (their first error says which)."""

_IMPORT = re.compile(r'^(\s*)import tractor(\s*(#.*)?)$', re.M)
_IMPORT_SUB = re.compile(r'^(\s*)import tractor\.', re.M)
_FROM = re.compile(r'^(\s*)from tractor(\.|\s)', re.M)


def rename_imports(source: str) -> str:
    """The import rename, and nothing else."""
    source = _IMPORT.sub(r'\1import tractor_subint as tractor\2', source)
    source = _IMPORT_SUB.sub(r'\1import tractor_subint.', source)
    return _FROM.sub(r'\1from tractor_subint\2', source)


@dataclass
class Outcome:
    script: str
    backend: str
    ok: bool
    rc: int | None
    seconds: float
    first_error: str
    """The first line naming an error in the script's stderr (its blocker)."""
    last_line: str
    repls: list[str]
    """The actors whose REPL prompted, in order (``debugging/`` scripts)."""


def extract(tarball: Path, into: Path) -> Path:
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if '/examples/' in m.name and m.isfile()]
        tar.extractall(into, members=members, filter='data')
    (examples,) = into.glob('*/examples')
    for path in examples.rglob('*.py'):
        path.write_text(rename_imports(path.read_text()))
    return examples


def scripts_in(examples: Path) -> list[str]:
    return sorted(
        str(p.relative_to(examples)) for p in examples.rglob('*.py')
        if not p.name.startswith('_')
    )


_ERROR_LINE = re.compile(r'\b(\w+(Error|Exception|Interrupt|Cancelled|Exit))\b')


def first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        text = line.strip().lstrip('| ')
        if _ERROR_LINE.search(text) and not text.startswith(('File ', 'Traceback', 'raise ', '^')):
            return text[:160]
    return ''


_PROMPT = re.compile(r'\((\w+)\) Pdb> ')


def repl_prompts(stdout: str) -> list[str]:
    """The actors whose REPL prompted, in order (``(name) Pdb> ``)."""
    return _PROMPT.findall(stdout)


def judge(script: str, rc: int | None, stderr: str, stdout: str = '') -> bool:
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ''
    if script.startswith('debugging/'):
        expected = DEBUG_EXPECTED.get(script)
        if expected is None:
            return False
        want_rc, want_errors, want_repls = expected
        tail = '\n'.join(lines[-40:])
        repls = set(repl_prompts(stdout))
        return (
            rc == want_rc and all(error in tail for error in want_errors)
            and all(actor in repls for actor in want_repls)
        )
    return rc == 0 and 'Error' not in last


def run_one(examples: Path, script: str, backend: str, *, timeout: float, python: str) -> Outcome:
    path = examples / script
    env = dict(os.environ)
    env['TRACTOR_SUBINT_SPAWN_METHOD'] = backend
    env['PYTHONUNBUFFERED'] = '1'
    feed = 'c\n' * 30 if script.startswith('debugging/') else ''
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [python, path.name], cwd=path.parent, env=env, stdin=subprocess.PIPE,
            stdout=out, stderr=err, start_new_session=True,
        )
        try:
            assert proc.stdin is not None
            try:
                proc.stdin.write(feed.encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors='replace')
        out.seek(0)
        stdout = out.read().decode(errors='replace')
    seconds = time.monotonic() - started
    lines = [line for line in stderr.splitlines() if line.strip()]
    return Outcome(
        script, backend, judge(script, rc, stderr, stdout), rc, round(seconds, 1),
        first_error(stderr) if rc != 0 or rc is None else '',
        lines[-1][:160] if lines else '',
        repl_prompts(stdout),
    )


def missing_repls(outcome: Outcome) -> str:
    """'no REPL in ...' when a debugging script's expected REPLs did not open."""
    expected = DEBUG_EXPECTED.get(outcome.script)
    missing = [a for a in expected[2] if a not in outcome.repls] if expected else []
    return f'no REPL in {", ".join(missing)}' if missing else ''


def markdown(outcomes: list[Outcome], backends: list[str]) -> str:
    by_script: dict[str, dict[str, Outcome]] = {}
    for outcome in outcomes:
        by_script.setdefault(outcome.script, {})[outcome.backend] = outcome
    counted = [s for s in by_script if s not in NOT_COUNTED]
    everywhere = [s for s in counted if all(by_script[s][b].ok for b in backends if b in by_script[s])]
    per_backend = ', '.join(
        f'{backend} {sum(by_script[s][backend].ok for s in counted if backend in by_script[s])}'
        for backend in backends
    )
    rows = [
        f'{len(everywhere)} of {len(counted)} run on every backend ({", ".join(backends)}); '
        f'per backend: {per_backend}.',
        '',
        '| example | ' + ' | '.join(backends) + ' | first error where it does not run |',
        '|---|' + '---|' * len(backends) + '---|',
    ]
    for script, per in sorted(by_script.items()):
        cells = []
        blocker = ''
        for backend in backends:
            outcome = per.get(backend)
            if outcome is None:
                cells.append('')
                continue
            if script in NOT_COUNTED:
                cells.append(f'rc={outcome.rc} {outcome.seconds:.1f} s')
                continue
            if outcome.ok:
                cells.append(f'ok {outcome.seconds:.1f} s')
            else:
                status = 'timeout' if outcome.rc is None else f'rc={outcome.rc}'
                cells.append(f'no ({status}) {outcome.seconds:.1f} s')
                blocker = blocker or missing_repls(outcome) or outcome.first_error or outcome.last_line
        name = f'`{script}`' + (f' ({NOT_COUNTED[script]}: not counted)' if script in NOT_COUNTED else '')
        rows.append(f'| {name} | ' + ' | '.join(cells) + f' | {blocker.replace("|", "/")} |')
    return '\n'.join(rows) + '\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tarball', type=Path, default=DEFAULT_TARBALL)
    parser.add_argument('--backends', default=','.join(BACKENDS))
    parser.add_argument('--only', nargs='*', default=None, help='scripts (paths under examples/)')
    parser.add_argument('--timeout', type=float, default=30.0)
    parser.add_argument('--python', default=sys.executable)
    parser.add_argument('--markdown', type=Path)
    parser.add_argument('--json', type=Path)
    args = parser.parse_args()
    backends = [b for b in args.backends.split(',') if b]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix='ts-examples-') as tmp:
        examples = extract(args.tarball, Path(tmp))
        scripts = args.only or scripts_in(examples)
        for script in scripts:
            for backend in backends:
                outcome = run_one(examples, script, backend, timeout=args.timeout, python=args.python)
                outcomes.append(outcome)
                mark = 'ok ' if outcome.ok else 'NO '
                print(f'{mark} {backend:24} {script:60} rc={outcome.rc} {outcome.seconds:5.1f}s '
                      f'{outcome.first_error[:90]}', flush=True)
    table = markdown(outcomes, backends)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
