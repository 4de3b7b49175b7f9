"""Run upstream tractor's documented examples as scripts, once per spawn key.

usage: upstream_examples.py TREE PYTHON KEY [KEY ...] [--timeout S] [--json FILE]

TREE is an unpacked upstream snapshot (its ``examples/``), PYTHON a venv's
interpreter where upstream tractor and tractor_subint (a regular install:
the ``.pth`` hook) are installed. The examples are the ones upstream's
``tests/test_docs_examples.py`` runs; each is copied to a fresh directory and
run as ``python script.py`` with ``TRACTOR_SPAWN_METHOD=KEY``, one at a
time, as a user would. A run passes when it exits 0 within the timeout, its
last stderr line names no error (upstream's own rule), nothing on stderr
comes from our ``.pth`` hook, and no process of its session outlives it.

The examples' registry listens on 127.0.0.1:1616 (and, over UDS, on
``$XDG_RUNTIME_DIR/tractor/registry@1616.sock``): each run gets a runtime
directory and, where this machine allows it (root, ``unshare``, ``ip``), a
network namespace of its own, else runs hold a machine-wide lock, so that
concurrent runs (and a stale socket file) never collide.
Prints a table (seconds per example and key, totals); exit status 1 if any
run failed.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKIPPED_DIRS = ('debugging', 'integration', 'advanced_faults', 'multihost', 'trio')
"""Example directories upstream's docs test leaves out (REPLs, networks...)."""
HOOK_MARKS = ('.pth', 'tractor_subint')
REGISTRY_LOCK = '/tmp/tractor-examples-registry-1616.lock'


def documented_examples(tree: Path) -> list[Path]:
    """The scripts upstream's ``test_docs_examples`` runs, sorted."""
    found = []
    for path in sorted((tree / 'examples').rglob('*.py')):
        rel = path.relative_to(tree / 'examples')
        if any(part in SKIPPED_DIRS for part in rel.parts[:-1]) or '__' in str(rel):
            continue
        if path.name.startswith('_'):
            continue
        found.append(path)
    return found


def _can_isolate_network() -> bool:
    if os.geteuid() != 0 or not shutil.which('unshare') or not shutil.which('ip'):
        return False
    probe = subprocess.run(['unshare', '-n', 'ip', 'link', 'set', 'lo', 'up'], capture_output=True)
    return probe.returncode == 0


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f'/proc/{entry}/stat').read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        if int(fields[3]) == sid and fields[0] != 'Z':  # fields[3]: session id
            members.append(int(entry))
    return members


def _strays_after(sid: int, grace: float = 3.0) -> list[int]:
    """Processes of the run's session still alive ``grace`` seconds after it
    ended (they are killed)."""
    deadline = time.monotonic() + grace
    while (left := _session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def run_one(python: str, script: Path, key: str, timeout: float, isolate: bool) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix='ts-example-'))
    target = workdir / script.name
    shutil.copy(script, target)
    runtime_dir = workdir / 'run'  # the UDS transport's sockets (registry@1616.sock...)
    runtime_dir.mkdir(mode=0o700)
    env = {**os.environ, 'TRACTOR_SPAWN_METHOD': key, 'XDG_RUNTIME_DIR': str(runtime_dir)}
    command = [python, str(target)]
    if isolate:
        command = ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', *command]
    with contextlib.ExitStack() as held:
        if not isolate:
            fcntl.flock(held.enter_context(open(REGISTRY_LOCK, 'w')), fcntl.LOCK_EX)
        result = _run_and_judge(command, workdir, env, timeout)
    shutil.rmtree(workdir, ignore_errors=True)
    return {'example': str(script), 'key': key, **result}


def _run_and_judge(
    command: list[str], workdir: Path, env: dict[str, str], timeout: float,
) -> dict[str, object]:
    started = time.monotonic()
    proc = subprocess.Popen(
        command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )
    hung = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    elapsed = time.monotonic() - started
    strays = _strays_after(proc.pid)
    stderr = err.decode(errors='replace')
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ''
    problems = []
    if hung:
        problems.append(f'hung (killed after {timeout:.0f} s)')
    elif proc.returncode != 0:
        problems.append(f'rc={proc.returncode}')
    if 'Error' in last and 'CancelledError' not in last:
        problems.append(f'stderr ends in: {last[:200]}')
    hook_lines = [line for line in stderr.splitlines() if any(mark in line for mark in HOOK_MARKS)]
    if hook_lines:
        problems.append(f'printed by the hook: {hook_lines[0][:200]}')
    if strays:
        problems.append(f'stray processes: {strays}')
    return {
        'seconds': round(elapsed, 2), 'ok': not problems, 'problems': problems,
        'stdout_tail': out.decode(errors='replace')[-500:], 'stderr_tail': stderr[-2000:],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('tree', type=Path)
    parser.add_argument('python')
    parser.add_argument('keys', nargs='+')
    parser.add_argument('--timeout', type=float, default=30.0)
    parser.add_argument('--json', type=Path)
    parser.add_argument('--only', action='append', help='run only examples with this file name')
    args = parser.parse_args(argv)
    examples = [e for e in documented_examples(args.tree) if not args.only or e.name in args.only]
    isolate = _can_isolate_network()
    print(f'{len(examples)} examples x {args.keys}; registry port: '
          f'{"a network namespace per run" if isolate else "a machine-wide lock"}', flush=True)
    results = []
    for script in examples:
        row = [script.relative_to(args.tree / 'examples').as_posix()]
        for key in args.keys:
            result = run_one(args.python, script, key, args.timeout, isolate)
            results.append(result)
            row.append(f'{"ok" if result["ok"] else "FAIL"} {result["seconds"]:.2f}s')
        print(' | '.join(row), flush=True)
    failed = [r for r in results if not r['ok']]
    for key in args.keys:
        mine = [r for r in results if r['key'] == key]
        passed = sum(1 for r in mine if r['ok'])
        total = sum(float(r['seconds']) for r in mine)  # type: ignore[arg-type]
        print(f'{key}: {passed}/{len(mine)} passed, total {total:.1f} s')
    for result in failed:
        print(f'FAIL {result["example"]} under {result["key"]}: {"; ".join(result["problems"])}')
        print(f'  stderr tail: {str(result["stderr_tail"])[-800:]}')
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 1 if failed or not results else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
