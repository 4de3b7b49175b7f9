"""``python -m tractor_subint bench`` runs every backend beside the floor
references in one run and states its conditions. Timings are its output,
never asserted here."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tractor_subint.spawn import available_start_methods

# It measures every backend itself: once per CI Python is enough.
pytestmark = pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint', reason='the bench runs every backend itself',
)


def _bench(*args: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, '-m', 'tractor_subint', 'bench', '--quick', '--batches8', '1', *args],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_one_run_has_every_backend_beside_the_references():
    text = _bench()
    assert f'Python {sys.version.split()[0]}' in text
    assert 'bytecode: ' in text
    rows = [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| ')]
    expected = ['floor: bare fork', 'fork + trio.run']
    for key in available_start_methods():
        if key == 'subint_forkserver':
            expected += ['subint_forkserver (cold)', 'subint_forkserver (pool hit)']
        elif key == 'subint':
            expected += ['subint (isolated)', 'subint (legacy)']
        else:
            expected.append(key)
    # The medians table, then the ratios table: each item once in each.
    assert rows == ['item', *expected, 'item', *expected]
    assert '| floor: bare fork | 1.00x |' in text


def test_warm_bytecode_reruns_with_a_private_cache(tmp_path):
    env = {**os.environ, 'HOME': str(tmp_path), 'PYTHONDONTWRITEBYTECODE': '1'}
    text = _bench('--backends', 'main_thread_forkserver', '--bytecode', 'warm', env=env)
    cache = tmp_path / '.cache' / 'tractor_subint' / 'bench-pycache'
    assert f'bytecode: warm (private bytecode cache {cache})' in text
    assert any(cache.rglob('*.pyc'))


def test_subint_rows_and_the_transport_comparison():
    text = _bench('--backends', 'subint', '--transport')
    rows = [line.split('|')[1].strip() for line in text.splitlines() if line.startswith('| ')]
    assert rows.count('subint (isolated)') == 2 and rows.count('subint (legacy)') == 2
    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip('|').split('|')]

    header = cells(next(line for line in text.splitlines() if line.startswith('| item | first |')))
    isolated = dict(zip(header, cells(
        next(line for line in text.splitlines() if line.startswith('| subint (isolated) | '))
    )))
    for column in ('first', 'rtt_us', 'e2e', 'par8_stall', 'cpu1', 'cpu2'):
        assert float(isolated[column]) > 0, (column, isolated)  # measured, not '–'
    for transport in ('socket pair (blocking recv)', 'interpreter queues, polled flat out',
                      'interpreter queues, polled every 1 ms', 'interpreter queues + a pipe doorbell'):
        assert rows.count(transport) == 2  # 64 B and 64 KiB
