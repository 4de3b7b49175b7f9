"""Rounds, the tables, and the command line of ``python -m tractor_subint bench``."""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import trio

from ..runtime._boot import ENTRY
from ..spawn import available_start_methods, local_warm_pool
from ._items import BackendItem, Item, Sample, references
from ._probes import StallMeter
from ._transport import TRANSPORT_LEGEND, measure_transports, render_transports

WARM_CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'tractor_subint', 'bench-pycache')


@dataclass
class Results:
    """Every sample of one item."""

    item: Item
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, column: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(column, []).append(value)

    def median(self, column: str) -> float | None:
        values = self.samples.get(column)
        return statistics.median(values) if values else None


def bytecode_mode() -> str:
    """How this run's interpreters (and its children) get their bytecode."""
    if sys.pycache_prefix:
        return f'warm (private bytecode cache {sys.pycache_prefix})'
    if sys.flags.dont_write_bytecode:
        return 'as-is (PYTHONDONTWRITEBYTECODE=1: modules without bytecode are compiled at every import)'
    return 'default (bytecode written next to the sources)'


def build_items(keys: Sequence[str], warm_pool: int) -> list[Item]:
    items: list[Item] = list(references())
    for key in keys:
        if key == 'subint_forkserver':
            items.append(BackendItem(key, name='subint_forkserver (cold)', warm_pool=0))
            if warm_pool:
                items.append(BackendItem(key, name='subint_forkserver (pool hit)', warm_pool=warm_pool))
        elif key == 'subint':
            items.append(BackendItem(key, name='subint (isolated)', interpreter='isolated'))
            items.append(BackendItem(key, name='subint (legacy)', interpreter='legacy'))
        else:
            items.append(BackendItem(key))
    return items


def _is_pooled(item: Item) -> bool:
    return isinstance(item, BackendItem) and bool(item.warm_pool)


async def _pool_ready() -> None:
    pool = local_warm_pool(ENTRY)
    if pool is not None:
        await trio.to_thread.run_sync(pool.wait_ready, None, 60)


async def _sample(results: Results, kind: str, meter: StallMeter, *, n: int = 0) -> None:
    item = results.item
    if _is_pooled(item):
        await _pool_ready()  # a hit is what this row measures
    meter.reset()
    sample: Sample
    if kind == 'first':
        sample = await item.first()
    elif kind == 'end_to_end':
        sample = await item.end_to_end()
    elif kind == 'cpu':
        sample = await item.cpu()
    else:
        sample = await item.parallel(n, read_uss=(n == 8), meter=meter)
    stall = meter.worst * 1000
    if kind == 'first':
        results.add('first', sample.first)
        results.add('rtt_us', sample.rtt_us)
        results.add('cancel', sample.cancel)
        results.add('stall', stall)
        if _is_pooled(item):
            meter.reset()
            await _pool_ready()
            results.add('refill_stall', meter.worst * 1000)
    elif kind == 'end_to_end':
        results.add('e2e', sample.end_to_end)
    elif kind == 'cpu':
        results.add('cpu1', sample.cpu_one)
        results.add('cpu2', sample.cpu_two)
    else:
        results.add(f'par{n}_answered', sample.all_answered)
        results.add(f'par{n}_per_actor', None if sample.total is None else sample.total / n)
        results.add(f'par{n}_stall', sample.spawn_stall)
        for uss in sample.uss:
            results.add('uss', uss)


async def run_rounds(
    items: list[Item], rounds: int, parallel: dict[int, int], progress: bool, cpu_rounds: int = 0,
) -> list[Results]:
    """Every item, round by round, starting each round one item further on."""
    results = [Results(item) for item in items]
    meter = StallMeter()
    plan: list[tuple[str, int]] = [('first', 0), ('end_to_end', 0)] * 2  # warm-ups, not kept
    plan += [('first', 0), ('end_to_end', 0)] * rounds
    for n, batches in parallel.items():
        plan += [('parallel', n)] * batches
    plan += [('cpu', 0)] * cpu_rounds
    async with trio.open_nursery() as tn, AsyncExitStack() as stack:
        tn.start_soon(meter.run)
        for item in items:
            await stack.enter_async_context(item.opened())
        for index, (kind, n) in enumerate(plan):
            order = results[index % len(results):] + results[:index % len(results)]
            if progress:
                print(f'  round {index + 1}/{len(plan)}: {kind}{n or ""}', file=sys.stderr, flush=True)
            for result in order:
                if index < 4:
                    scratch = Results(result.item)
                    await _sample(scratch, kind, meter, n=n)
                else:
                    await _sample(result, kind, meter, n=n)
        tn.cancel_scope.cancel()
    return results


def _fmt(value: float | None, digits: int = 1) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return '–'
    return f'{value / base:.2f}x' if value / base < 10 else f'{value / base:.0f}x'


def render(results: list[Results], parallel: dict[int, int]) -> str:
    by_name = {r.item.name: r for r in results}
    floor = by_name['floor: bare fork'].median('first')
    fork_trio = by_name['fork + trio.run'].median('first')
    trio_first = by_name['trio'].median('first') if 'trio' in by_name else None
    mtf_first = (
        by_name['main_thread_forkserver'].median('first') if 'main_thread_forkserver' in by_name else None
    )
    columns = ['first', 'rtt_us', 'e2e', 'cancel', 'stall']
    for n in parallel:
        columns += [f'par{n}_answered', f'par{n}_per_actor', f'par{n}_stall']
    columns += ['uss', 'refill_stall', 'cpu1', 'cpu2']
    lines = [
        '| item | ' + ' | '.join(columns) + ' |',
        '|---|' + '---|' * len(columns),
    ]
    for r in results:
        lines.append(f'| {r.item.name} | ' + ' | '.join(_fmt(r.median(c)) for c in columns) + ' |')
    lines += [
        '',
        '| item | first / floor | first / fork+trio | first / trio | first / main_thread_forkserver '
        '| cpu2 / cpu1 |',
        '|---|---|---|---|---|---|',
    ]
    for r in results:
        first = r.median('first')
        lines.append(
            f'| {r.item.name} | {_ratio(first, floor)} | {_ratio(first, fork_trio)} | '
            f'{_ratio(first, trio_first)} | {_ratio(first, mtf_first)} | '
            f'{_ratio(r.median("cpu2"), r.median("cpu1"))} |'
        )
    return '\n'.join(lines)


LEGEND = '''\
Medians, ms (uss: MiB per live child, 8 alive). first = spawn request -> first
RPC answered, in a nursery open for the whole run (references: fork -> first
byte); rtt_us = one RPC round trip on a live actor (us, median of 20 after
the first); e2e = open_nursery -> spawn -> RPC -> cancel -> reaped, fresh nursery;
cancel = cancel_actor() until reaped; stall = the parent's longest event-loop
tick gap during a sample (1 ms ticker; idle noise ~1-2 ms); parN_answered =
N spawned at once until all answered; parN_per_actor = the batch until all
reaped, / N; parN_stall = the parent's longest loop gap from the batch's
start until all answered (spawning, not the teardown);
refill_stall = the loop's longest gap while the pool refilled; cpu1 = a
CPU-bound call (pure Python) in one actor, cpu2 = the same call in two actors
at once until both answered (cpu2 / cpu1: 1.0x runs in parallel, 2.0x in turn).
"pool hit" samples start with the pool full; "cold" ones have it off.'''


def _header(args: argparse.Namespace) -> str:
    import msgspec

    return (
        f'tractor_subint bench: Python {platform.python_version()} ({sys.executable}), '
        f'trio {trio.__version__}, msgspec {msgspec.__version__}, {os.cpu_count()} CPUs\n'
        f'bytecode: {bytecode_mode()}\n'
        f'rounds: {args.rounds} sequential (after 2 warm-ups), parallel '
        + ', '.join(f'{n} x {b}' for n, b in _parallel(args).items())
        + f'; CPU {args.cpu_rounds}; warm pool size {args.warm_pool}; '
        f'items interleaved, rotating each round'
    )


def _parallel(args: argparse.Namespace) -> dict[int, int]:
    return {8: args.batches8, 32: args.batches32} if args.batches32 else {8: args.batches8}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--rounds', type=int, default=10, help='sequential samples per item (default 10)')
    parser.add_argument('--batches8', type=int, default=3, help='batches of 8 at once (default 3)')
    parser.add_argument('--batches32', type=int, default=1, help='batches of 32 at once (default 1; 0: none)')
    parser.add_argument('--warm-pool', type=int, default=2, help='pool size of the pooled row (default 2)')
    parser.add_argument(
        '--backends', nargs='*', metavar='KEY', default=None,
        help=f'backends to measure (default: all usable: {", ".join(available_start_methods())})',
    )
    parser.add_argument(
        '--bytecode', choices=['as-is', 'warm'], default='as-is',
        help=f'warm: rerun with PYTHONDONTWRITEBYTECODE unset and a private cache ({WARM_CACHE})',
    )
    parser.add_argument(
        '--cpu-rounds', type=int, default=3, help='samples of the CPU-bound one/two-actor item (default 3)',
    )
    parser.add_argument(
        '--transport', action='store_true',
        help='also compare socket pairs with interpreter queues between interpreters of one process',
    )
    parser.add_argument('--quick', action='store_true', help='2 rounds, one batch of 8, no 32, 1 CPU round')
    parser.add_argument('--progress', action='store_true', help='say on stderr which round runs')


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.bytecode == 'warm' and sys.pycache_prefix != WARM_CACHE:
        env = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}
        env['PYTHONPYCACHEPREFIX'] = WARM_CACHE
        os.execve(sys.executable, [sys.executable, '-m', 'tractor_subint', 'bench', *argv], env)
    if args.quick:
        args.rounds, args.batches8, args.batches32, args.cpu_rounds = 2, 1, 0, 1
    keys = args.backends if args.backends is not None else list(available_start_methods())
    items = build_items(keys, args.warm_pool)
    print(_header(args), flush=True)
    started = time.monotonic()
    results = trio.run(run_rounds, items, args.rounds, _parallel(args), args.progress, args.cpu_rounds)
    print(f'({time.monotonic() - started:.0f} s)\n')
    print(render(results, _parallel(args)))
    print()
    print(LEGEND)
    if args.transport:
        print()
        print(render_transports(measure_transports(n=400 if args.quick else 2000)))
        print()
        print(TRANSPORT_LEGEND)
    return 0
