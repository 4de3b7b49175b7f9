"""Every smoketest scenario, run as its own process, must report PASS."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import trio

from tractor_subint.testing import trio_parent_test

SMOKETEST = (
    pathlib.Path(__file__).resolve().parents[2]
    / 'ai' / 'conc-anal' / 'subint_fork_from_main_thread_smoketest.py'
)


def _scenarios() -> list[str]:
    out = subprocess.run(
        [sys.executable, str(SMOKETEST), '--help'], capture_output=True, text=True, check=True
    ).stdout
    choices = out.split('--scenario {', 1)[1].split('}', 1)[0]
    return choices.split(',')


SCENARIOS = _scenarios()


def test_scenarios_cover_the_required_set():
    assert {
        'control_subint_thread_fork', 'main_thread_fork', 'worker_thread_fork',
        'full_architecture', 'fork_with_live_subint', 'orphan_sigint',
    } <= set(SCENARIOS)


@pytest.mark.parametrize('scenario', SCENARIOS)
@trio_parent_test(timeout=60)
async def test_smoketest_scenario_passes(scenario):
    result = await trio.run_process(
        [sys.executable, str(SMOKETEST), '--scenario', scenario],
        capture_stdout=True, capture_stderr=True, check=False,
    )
    banner = result.stdout.decode().strip().splitlines()[-1] if result.stdout else ''
    assert result.returncode == 0 and banner.startswith(f'PASS [{scenario}]'), (
        f'rc={result.returncode}\nstdout: {result.stdout.decode()}\n'
        f'stderr: {result.stderr.decode()[-2000:]}'
    )


def test_unknown_scenario_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, str(SMOKETEST), '--scenario', 'nope'], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert 'invalid choice' in result.stderr
