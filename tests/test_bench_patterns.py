"""The machinery of the bench's usage-pattern rows (fresh nursery per use,
bursts from cold and after an idle second, a whole program, 128 at once, a
long-lived tree): what each sample starts from, what it measures, where it
goes in a run. Timings are the bench's output, never asserted here."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import trio

from tractor_subint.bench._items import BackendItem, ForkReference, SocketFloor
from tractor_subint.bench._measures import PROGRAM, burst, parallel
from tractor_subint.bench._probes import StallMeter, rss_mib
from tractor_subint.bench._report import BenchRun, ItemResults, render_patterns
from tractor_subint.bench._run import Patterns, _sample, build_items, make_plan
from tractor_subint.runtime._boot import ENTRY
from tractor_subint.spawn import close_local_pools, local_warm_pool
from tractor_subint.spawn.pool import warm_up
from tractor_subint.testing import descendants, trio_parent_test


def _ours() -> set[int]:
    return {info.pid for info in descendants()}


pytestmark = pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint', reason='the bench picks its backends itself',
)


def test_the_patterns_come_after_every_step_that_starts_from_a_full_pool():
    plan = make_plan(2, {8: 1}, 1, Patterns({8: 2, 32: 1}, programs=3, batches128=1, tree=50))
    names = [step.measure.name for step in plan]
    first_burst = names.index('burst8')
    # A burst closes the process's pools: nothing that expects them full
    # follows it but the batch of 128, whose sample warms them again first.
    assert all(not step.measure.starts_warm for step in plan[first_burst:] if step.measure.name != 'par128')
    assert names[first_burst:] == ['burst8', 'burst8', 'burst32', 'program', 'program', 'program', 'par128',
                                   'tree50']
    assert all(step.kept for step in plan[first_burst:])
    plain = [(step.label, step.measure.name) for step in make_plan(2, {8: 1}, 1)]
    assert [(step.label, step.measure.name) for step in make_plan(2, {8: 1}, 1, Patterns({}))] == plain


def test_pooled_rows_are_marked_and_a_size_of_zero_leaves_them_out():
    rows = {item.name: item for item in build_items(['subint_forkserver', 'subint'], None)}
    pooled = {name for name, item in rows.items() if item.pooled}
    assert pooled == {'subint_forkserver (pool hit)', 'subint (isolated, pool)'}
    assert rows['subint_forkserver (pool hit)'].warm_pool is None  # adaptive: what a user gets
    assert rows['subint_forkserver (cold)'].warm_pool == 0
    assert 'floor: fork + trio + socket' in rows
    assert not any(item.pooled for item in build_items(['subint_forkserver', 'subint'], 0))
    assert 'subint_forkserver (pool hit)' not in {item.name for item in build_items(['subint_forkserver'], 0)}


class _Recorder(BackendItem):
    """A pooled row whose samples say what happened before them."""

    def __init__(self) -> None:
        super().__init__('subint_forkserver', warm_pool=2, pooled=True)
        self.events: list[str] = []

    async def pool_ready(self) -> None:
        self.events.append('pool_ready')

    async def burst(self, n, meter):  # type: ignore[no-untyped-def]
        self.events.append(f'burst{n}')
        return await ForkReference('x').burst(0, meter)

    async def program(self):  # type: ignore[no-untyped-def]
        self.events.append('program')
        return await ForkReference('x').program()


@trio_parent_test(timeout=30)
async def test_a_pattern_sample_does_not_fill_the_pool_first_a_batch_does():
    item = _Recorder()
    results = ItemResults(item.name)
    meter = StallMeter()
    await _sample(item, results, burst(8), meter)
    await _sample(item, results, PROGRAM, meter)
    assert item.events == ['burst8', 'program']
    item.events.clear()

    async def nothing(self, n, *, read_uss, meter):  # type: ignore[no-untyped-def]
        from tractor_subint.bench._items import Sample
        return Sample()

    item.parallel = nothing.__get__(item)  # type: ignore[method-assign]
    await _sample(item, results, parallel(128), meter)
    assert item.events == ['pool_ready']


@trio_parent_test(timeout=60)
async def test_a_burst_of_a_reference_takes_both_bursts_and_their_stalls():
    meter, already = StallMeter(), _ours()
    async with trio.open_nursery() as tn:
        tn.start_soon(meter.run)
        values = await burst(4).take(SocketFloor('floor: fork + trio + socket'), meter)
        tn.cancel_scope.cancel()
    assert set(values) == {'burst4_first', 'burst4_first_stall', 'burst4_second', 'burst4_second_stall'}
    assert all(isinstance(v, float) and v > 0 for v in values.values()), values
    assert _ours() <= already


@trio_parent_test(timeout=90)
async def test_a_burst_starts_with_no_warm_pool_and_leaves_one_grown_for_the_next():
    item = BackendItem('subint_forkserver', name='sfs', warm_pool=None, pooled=True)
    already = _ours()
    try:
        await warm_up(ENTRY, None, awaken=True)  # as a pooled row readies it
        before = local_warm_pool(ENTRY)
        assert before is not None and before.member_pids()
        old_members = set(before.member_pids())
        meter = StallMeter()
        async with trio.open_nursery() as tn:
            tn.start_soon(meter.run)
            sample = await item.burst(3, meter)
            tn.cancel_scope.cancel()
        # The members that were warm before the burst are gone (closed, reaped),
        # and the adaptive pool grew to the burst's size for the next one.
        assert before.member_pids() == []
        assert not old_members & _ours()
        after = local_warm_pool(ENTRY)
        assert after is not None and after is not before and after.size >= 3
        assert sample.burst_first and sample.burst_second
        assert sample.burst_first_stall is not None and sample.burst_second_stall is not None
    finally:
        await trio.to_thread.run_sync(close_local_pools)
    assert _ours() <= already


@trio_parent_test(timeout=60)
async def test_a_program_is_a_whole_process_that_answered_or_the_row_fails_with_its_stderr():
    sample = await BackendItem('trio').program()
    assert sample.program is not None and sample.program > 0
    failed = r'(?s)the one-actor program failed under no-such-backend: .*unknown spawn method'
    with pytest.raises(RuntimeError, match=failed):
        await BackendItem('no-such-backend').program()
    assert (await ForkReference('floor').program()).program is None  # backends only


@trio_parent_test(timeout=30)
async def test_the_socket_floor_times_its_first_answer_and_then_its_round_trips():
    already = _ours()
    sample = await SocketFloor('floor: fork + trio + socket').first()
    assert sample.first is not None and sample.first > 0
    assert sample.rtt_us is not None and 0 < sample.rtt_us < sample.first * 1000
    assert sample.rtt_slept is not None and 0 <= sample.rtt_slept <= 100
    assert _ours() <= already  # the child saw its socket close, ended, and was reaped


@trio_parent_test(timeout=60)
async def test_a_tree_is_measured_on_in_process_pooled_rows_only():
    try:
        sample = await BackendItem('subint', interpreter='isolated', warm_pool=1, pooled=True).tree(3)
        assert sample.tree_growth is not None and sample.tree_cycle is not None and sample.tree_cycle > 0
        unpooled = BackendItem('subint', interpreter='isolated', warm_pool=0)
        for row in (unpooled, BackendItem('trio', pooled=True)):
            assert (await row.tree(3)).tree_growth is None
    finally:
        await trio.to_thread.run_sync(close_local_pools)  # this process must be able to fork again


def test_rss_reads_this_process():
    assert 1 < rss_mib() < 100_000


def _run_with(columns: dict[str, dict[str, list[float]]]) -> BenchRun:
    items = [ItemResults('floor: bare fork')]
    for name, samples in columns.items():
        items.append(ItemResults(name, backend=name.split()[0], samples=samples))
    meta = {c: {'unit': 'ms', 'doc': c} for c in ('first', 'fresh_first', 'burst8_second', 'program')}
    return BenchRun('now', 0.0, [], {}, {}, {}, meta, items)


def test_the_patterns_table_is_each_pattern_over_trio_with_the_spread():
    run = _run_with({
        'trio': {'fresh_first': [100.0, 200.0, 300.0], 'burst8_second': [1000.0], 'program': [500.0]},
        'subint_forkserver (pool hit)': {'fresh_first': [10.0, 20.0, 30.0], 'program': [400.0, 600.0]},
    })
    text = render_patterns(run)
    lines = text.splitlines()
    assert lines[0] == '| item | fresh_first / trio | burst8_second / trio | program / trio |'
    assert lines[2] == '| trio | 1.00x (0.50–1.50) | 1.00x | 1.00x |'
    assert lines[3] == '| subint_forkserver (pool hit) | 0.10x (0.05–0.15) | – | 1.00x (0.80–1.20) |'
    assert len(lines) == 4  # references have no patterns
    assert render_patterns(_run_with({'mtf': {'fresh_first': [1.0]}})) == ''  # no trio row: no table


def test_a_patterned_run_keeps_its_rows_in_the_json_and_compares_them(tmp_path):
    path = str(tmp_path / 'run.json')
    command = [
        sys.executable, '-m', 'tractor_subint', 'bench', '--quick', '--backends', 'trio', '--batches8', '0',
        '--cpu-rounds', '0', '--bursts8', '1', '--programs', '1', '--json', path,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert '1 burst of 8 (each: from cold, then after 1 s idle), 1 whole program' in done.stdout
    assert '| trio | 1.00x (' in done.stdout and '| burst8_first / trio |' in done.stdout
    with open(path) as f:
        data = json.load(f)
    trio_row = next(item for item in data['items'] if item['name'] == 'trio')
    for column in ('fresh_first', 'burst8_first', 'burst8_first_stall', 'burst8_second',
                   'burst8_second_stall', 'program'):
        assert column in data['columns'] and len(trio_row['samples'][column]) >= 1, column
    assert data['settings']['bursts'] == {'8': 1} and data['settings']['programs'] == 1
    assert all(rate > 0 for rate in trio_row['samples']['stream_items_s'])
    floor = next(item for item in data['items'] if item['name'] == 'floor: fork + trio + socket')
    assert floor['samples']['rtt_us'] and "| rtt_us / socket floor's |" in done.stdout
    compared = subprocess.run(
        [sys.executable, '-m', 'tractor_subint', 'bench', '--load', path, '--compare', path],
        capture_output=True, text=True, timeout=60,
    )
    assert compared.returncode == 0, compared.stderr
    table = compared.stdout[compared.stdout.index('Compared with'):]
    header = next(line for line in table.splitlines() if line.startswith('| item |'))
    assert 'burst8_second' in header and 'program' in header
