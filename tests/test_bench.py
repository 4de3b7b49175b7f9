"""``python -m tractor_subint bench`` runs every backend beside the floor
references in one run, states its conditions, keeps every sample (``--json``)
and compares runs (``--compare``). Timings are its output, never asserted
here."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tractor_subint.bench._report import REFERENCES, SCHEMA
from tractor_subint.spawn import available_start_methods

# It measures every backend itself: once per CI Python is enough.
pytestmark = pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint', reason='the bench runs every backend itself',
)

CELL = re.compile(r'^(?P<median>[\d.]+) \((?P<min>[\d.]+)–(?P<max>[\d.]+)\)$')


@dataclass
class Done:
    rc: int
    stdout: str
    stderr: str


def _bench(*args: str, env: dict[str, str] | None = None, quick: bool = True, check: bool = True) -> Done:
    command = [sys.executable, '-m', 'tractor_subint', 'bench']
    if quick:
        command += ['--quick', '--batches8', '1']
    out = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert out.returncode == 0, out.stderr
    return Done(out.returncode, out.stdout, out.stderr)


def _rows(text: str) -> list[str]:
    return [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| ')]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip('|').split('|')]


def _table(text: str, first_header: str, rows: str = 'item') -> dict[str, dict[str, str]]:
    """The table whose header starts ``| rows | first_header``: row -> column -> cell."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f'| {rows} | {first_header}'))
    header = _cells(lines[start])
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith('| '):
            break
        cells = _cells(line)
        table[cells[0]] = dict(zip(header[1:], cells[1:]))
    return table


def _expected_items() -> list[str]:
    expected = ['floor: bare fork', 'fork + trio.run', 'floor: fork + trio + socket']
    for key in available_start_methods():
        if key == 'subint_forkserver':
            expected += ['subint_forkserver (cold)', 'subint_forkserver (pool hit)']
        elif key == 'subint':
            expected += ['subint (isolated)', 'subint (isolated, pool)', 'subint (legacy)']
        else:
            expected.append(key)
    return expected


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory) -> tuple[Done, str]:
    """One quick run of every backend, with its JSON and its progress."""
    path = str(tmp_path_factory.mktemp('bench') / 'run.json')
    return _bench('--json', path, '--progress'), path


def test_one_run_has_every_backend_beside_the_references(quick_run):
    text = quick_run[0].stdout
    assert f'Python {sys.version.split()[0]}' in text
    assert 'bytecode: ' in text
    expected = _expected_items()
    backends = [name for name in expected if name not in REFERENCES]
    # The samples table (and its count row), the ratios table: each item once in
    # each; the patterns table (a fresh nursery per use, in every run): each backend.
    assert _rows(text) == ['item', *expected, '(samples per cell)', 'item', *expected, 'item', *backends]
    assert '| item | fresh_first / trio |' in text
    assert '| floor: bare fork | 1.00x |' in text


def test_each_cell_shows_its_spread_and_each_column_its_sample_count(quick_run):
    samples = _table(quick_run[0].stdout, 'first |')
    counts = samples.pop('(samples per cell)')
    assert counts['first'] == counts['e2e'] == '2'  # --quick: 2 rounds
    assert counts['par8_answered'] == counts['cpu1'] == '1'
    for item, row in samples.items():
        match = CELL.match(row['first'])
        assert match, (item, row['first'])
        low, median, high = (float(match[k]) for k in ('min', 'median', 'max'))
        assert low <= median <= high


def test_the_progress_counts_the_steps_the_header_announces(quick_run):
    done = quick_run[0]
    steps = int(re.search(r'^plan: (\d+) steps', done.stdout, re.M)[1])
    progress = re.findall(r'^  \[(\d+)/(\d+)\] ', done.stderr, re.M)
    assert [(int(i), int(n)) for i, n in progress] == [(i, steps) for i in range(1, steps + 1)]
    assert '2 rounds' in done.stdout and 'warm-up 2/2' in done.stderr and 'round 2/2' in done.stderr


def test_the_json_holds_every_sample_the_environment_and_the_versions(quick_run):
    done, path = quick_run
    with open(path) as f:
        data = json.load(f)
    assert data['schema'] == SCHEMA
    assert data['environment']['python'] == sys.version.split()[0]
    assert data['environment']['cpus'] == os.cpu_count()
    assert data['versions']['tractor_subint'] and data['versions']['trio'] and data['versions']['msgspec']
    assert data['settings']['rounds'] == 2
    assert [item['name'] for item in data['items']] == _expected_items()
    assert set(data['columns']) >= {
        'first', 'e2e', 'rtt_us', 'ctx_us', 'stream_rtt_us', 'stream_items_s', 'par8_answered', 'cpu1',
        'cpu2',
    }
    units = ('ms', 'us', 'MiB', 'items/s', '%')
    assert all(meta['unit'] in units and meta['doc'] for meta in data['columns'].values())
    shown = _table(done.stdout, 'first |')
    for item in data['items']:
        assert len(item['samples']['first']) == len(item['samples']['e2e']) == 2, item['name']
        first = item['samples']['first']
        assert item['summary']['first']['median'] == pytest.approx(sum(first) / 2)
        assert shown[item['name']]['first'].startswith(f'{item["summary"]["first"]["median"]:.1f} (')
        if item['backend'] is not None:
            assert len(item['samples']['cpu1']) == 1
    assert f'wrote every sample to {path}' in done.stdout


def test_compare_prints_ratios_to_an_earlier_run(quick_run, tmp_path):
    _done, path = quick_run
    with open(path) as f:
        data = json.load(f)
    trio_row = next(item for item in data['items'] if item['name'] == 'trio')
    # Samples of our own: the measured ones may lie 2x apart on a loaded machine,
    # and then halving them would overlap what they were.
    trio_row['samples']['first'] = [200.0, 240.0]
    new = tmp_path / 'new.json'
    new.write_text(json.dumps(data))
    trio_row['samples']['first'] = [100.0, 120.0]  # the old run: 2x faster
    data['versions']['trio'] = '0.0.1'
    old = tmp_path / 'old.json'
    old.write_text(json.dumps(data))
    text = _bench('--load', str(new), '--compare', str(old), quick=False).stdout
    assert f'Compared with {old}' in text
    assert 'note: trio 0.0.1 then' in text
    ratios = _table(text[text.index('Compared with'):], 'first |')
    assert ratios['trio']['first'] == '2.00x *'  # no overlap: marked
    assert ratios['floor: bare fork']['first'] == '1.00x'
    assert ratios['trio']['cpu1'] == '1.00x'  # one sample: no spread, never marked
    assert set(ratios) == set(_expected_items())


def test_a_file_that_is_no_bench_result_is_refused_before_measuring(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"schema": "something else"}')
    done = _bench('--compare', str(bad), check=False)
    assert done.rc == 2
    assert f'bench: --compare: {bad}: not a tractor_subint bench result' in done.stderr
    assert done.stdout == ''


def test_plot_draws_the_spawn_times(quick_run, tmp_path):
    pytest.importorskip('matplotlib')
    png = tmp_path / 'first.png'
    done = _bench('--load', quick_run[1], '--plot', str(png), quick=False)
    assert png.read_bytes().startswith(b'\x89PNG')
    assert f'plotted the spawn times (first) to {png}' in done.stdout


def test_plot_without_matplotlib_says_how_to_get_it_and_reports_the_rest(quick_run, tmp_path):
    png = tmp_path / 'first.png'
    code = (
        'import sys; sys.modules["matplotlib"] = None\n'  # what an install without the extra sees
        'from tractor_subint.__main__ import main\n'
        f'sys.exit(main(["bench", "--load", {quick_run[1]!r}, "--plot", {str(png)!r}]))'
    )
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--plot needs matplotlib" in done.stderr and "pip install 'tractor_subint[plot]'" in done.stderr
    assert '| trio |' in done.stdout
    assert not png.exists()


def test_warm_bytecode_reruns_with_a_private_cache(tmp_path):
    env = {**os.environ, 'HOME': str(tmp_path), 'PYTHONDONTWRITEBYTECODE': '1'}
    text = _bench('--backends', 'main_thread_forkserver', '--bytecode', 'warm', env=env).stdout
    cache = tmp_path / '.cache' / 'tractor_subint' / 'bench-pycache'
    assert f'bytecode: warm (private bytecode cache {cache})' in text
    assert any(cache.rglob('*.pyc'))


def test_subint_rows_and_the_transport_comparison(tmp_path):
    path = tmp_path / 'subint.json'
    text = _bench('--backends', 'subint', '--transport', '--json', str(path)).stdout
    rows = _rows(text)
    assert rows.count('subint (isolated)') == 2 and rows.count('subint (legacy)') == 2
    isolated = _table(text, 'first |')['subint (isolated)']
    measured = (
        'first', 'rtt_us', 'ctx_us', 'stream_rtt_us', 'stream_items_s', 'e2e', 'par8_stall', 'cpu1', 'cpu2',
    )
    for column in measured:
        assert float(isolated[column].split()[0]) > 0, (column, isolated)  # measured, not '–'
    transports = ('socket pair (blocking recv)', 'interpreter queues, polled flat out',
                  'interpreter queues, polled every 1 ms', 'interpreter queues + a pipe doorbell')
    for transport in transports:
        assert rows.count(transport) == 2  # 64 B and 64 KiB
    kept = json.loads(path.read_text())['transport']
    assert {(row['name'], row['size']) for row in kept} == {(t, s) for t in transports for s in (64, 65536)}


def test_imports_measures_each_kind_of_interpreter_and_its_first_message(tmp_path):
    path = str(tmp_path / 'imports.json')
    done = _bench(
        '--backends', 'trio', '--batches8', '0', '--cpu-rounds', '0', '--imports', '--json', path,
    )
    table = _table(done.stdout, 'modules |', rows='interpreter')
    assert set(table) == {'process', 'legacy', 'isolated'}
    for kind, row in table.items():
        assert int(row['modules']) > 100, (kind, row)
        assert CELL.match(row['ours']) and CELL.match(row['upstream alone']), (kind, row)
    with open(path) as f:
        imports = json.load(f)['imports']
    kinds = {kind['kind']: kind for kind in imports['kinds']}
    assert len(kinds['isolated']['upstream_ms']) == 2  # --quick: 2 repeats
    assert any(name.startswith('tractor_subint.runtime') for name in kinds['process']['ours'])
    # Nothing between an actor's boot and its first message but the modules it
    # enabled (and, in a fresh process, the exec shell's report path).
    allowed = {'tractor_subint.bench', 'tractor_subint.bench.targets'}
    exec_shell = {'tractor_subint.spawn._child_report', 'tractor_subint.spawn._fds'}
    for case, extra in imports['first_message'].items():
        assert set(extra) <= allowed | (exec_shell if case == 'trio' else set()), (case, extra)


def test_importtime_lines_are_read_after_the_mark():
    from tractor_subint.bench._imports import _MARK, group_of, parse_importtime

    text = '\n'.join([
        'import time:       100 |        100 | site',
        _MARK,
        'import time: self [us] | cumulative | imported package',
        'import time:       300 |        300 |   tractor_subint.log',
        'import time:        50 |         50 |     json',
        'import time:      1200 |       1500 | trio',
    ])
    assert [(i.name, i.self_us) for i in parse_importtime(text)] == [
        ('tractor_subint.log', 300), ('json', 50), ('trio', 1200),
    ]
    assert group_of('json', start_up={'site'}, upstream={'trio'}) == 'stdlib via ours'
    assert group_of('json', start_up=set(), upstream={'trio', 'json'}) == 'stdlib via upstream'
    assert group_of('site', start_up={'site'}, upstream=set()) == 'start-up'
    assert group_of('attr._make', start_up=set(), upstream=set()) == 'upstream'
