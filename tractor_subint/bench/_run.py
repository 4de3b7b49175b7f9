"""The plan, the rounds, and the command line of ``python -m tractor_subint bench``."""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import trio

from ..spawn import available_start_methods
from ._imports import (
    IMPORTS_LEGEND,
    first_message_modules,
    measure_imports,
    render_run_imports,
)
from ._items import BackendItem, Item, references, release_interpreters
from ._measures import CPU, END_TO_END, FIRST, PROGRAM, Measure, burst, is_pooled, parallel, tree
from ._probes import StallMeter
from ._report import (
    BenchRun,
    ItemResults,
    plot,
    plot_unavailable,
    render_comparison,
    render_legend,
    render_tables,
)
from ._transport import TRANSPORT_LEGEND, TransportRow, measure_transports, render_transports

WARM_CACHE = os.path.join(os.path.expanduser('~'), '.cache', 'tractor_subint', 'bench-pycache')
WARMUPS = 2
"""Rounds run first and not kept (imports, caches, the first fork of a tree)."""


@dataclass(frozen=True)
class Step:
    """One step of a run: every item takes one sample of ``measure``."""

    label: str
    measure: Measure
    kept: bool = True


@dataclass(frozen=True)
class Patterns:
    """How many samples of each usage pattern a run takes after its rounds,
    batches and CPU rounds (0: none)."""

    bursts: dict[int, int]
    """Burst size -> samples (each: a first burst from cold, a second after an idle second)."""
    programs: int = 0
    """Whole one-actor programs per backend."""
    batches128: int = 0
    """Batches of 128 at once."""
    tree: int = 0
    """Actors of the long-lived tree (one sample; in-process rows with a pool)."""


def make_plan(
    rounds: int, parallel_batches: dict[int, int], cpu_rounds: int, patterns: Patterns | None = None,
) -> list[Step]:
    """The steps of a run, in order: warm-ups, the sequential rounds (a spawn
    in a long-lived nursery, then a whole fresh tree), the parallel batches,
    the CPU rounds; then the patterns: bursts (which close this process's
    pools: they come after every step that starts warm but the batches of
    128, whose samples warm the pool again first), whole programs, 128 at
    once, a long-lived tree."""
    steps = []
    for i in range(WARMUPS):
        steps += [Step(f'warm-up {i + 1}/{WARMUPS}', m, kept=False) for m in (FIRST, END_TO_END)]
    for i in range(rounds):
        steps += [Step(f'round {i + 1}/{rounds}', m) for m in (FIRST, END_TO_END)]
    for n, batches in parallel_batches.items():
        measure = parallel(n, read_uss=(n == 8))
        steps += [Step(f'batch of {n} {i + 1}/{batches}', measure) for i in range(batches)]
    steps += [Step(f'cpu {i + 1}/{cpu_rounds}', CPU) for i in range(cpu_rounds)]
    if patterns is None:
        return steps
    for n, samples in patterns.bursts.items():
        steps += [Step(f'burst of {n} {i + 1}/{samples}', burst(n)) for i in range(samples)]
    steps += [Step(f'program {i + 1}/{patterns.programs}', PROGRAM) for i in range(patterns.programs)]
    big = parallel(128)
    steps += [Step(f'batch of 128 {i + 1}/{patterns.batches128}', big) for i in range(patterns.batches128)]
    if patterns.tree:
        steps.append(Step(f'tree of {patterns.tree}', tree(patterns.tree)))
    return steps


def columns_of(plan: Sequence[Step]) -> dict[str, dict[str, str]]:
    columns: dict[str, dict[str, str]] = {}
    for step in plan:
        for column in step.measure.columns:
            columns.setdefault(column.name, {'unit': column.unit, 'doc': column.doc})
    return columns


def bytecode_mode() -> str:
    """How this run's interpreters (and its children) get their bytecode."""
    if sys.pycache_prefix:
        return f'warm (private bytecode cache {sys.pycache_prefix})'
    if sys.flags.dont_write_bytecode:
        return 'as-is (PYTHONDONTWRITEBYTECODE=1: modules without bytecode are compiled at every import)'
    return 'default (bytecode written next to the sources)'


def build_items(keys: Sequence[str], warm_pool: int | None) -> list[Item]:
    """The references, then each backend's rows: pool off ("cold"), and for
    the pooled backends a row with the pool at ``warm_pool`` (None: the
    default, adaptive) unless it is 0."""
    items: list[Item] = list(references())
    for key in keys:
        if key == 'subint_forkserver':
            items.append(BackendItem(key, name='subint_forkserver (cold)', warm_pool=0))
            if warm_pool != 0:
                items.append(BackendItem(
                    key, name='subint_forkserver (pool hit)', warm_pool=warm_pool, pooled=True,
                ))
        elif key == 'subint':
            items.append(BackendItem(key, name='subint (isolated)', interpreter='isolated', warm_pool=0))
            if warm_pool != 0:
                items.append(BackendItem(
                    key, name='subint (isolated, pool)', interpreter='isolated', warm_pool=warm_pool,
                    pooled=True,
                ))
            items.append(BackendItem(key, name='subint (legacy)', interpreter='legacy', warm_pool=0))
        else:
            items.append(BackendItem(key))
    return items


def _record(item: Item) -> ItemResults:
    if isinstance(item, BackendItem):
        return ItemResults(item.name, item.key, item.warm_pool, item.interpreter)
    return ItemResults(item.name)


async def _sample(item: Item, results: ItemResults, measure: Measure, meter: StallMeter) -> None:
    if not (isinstance(item, BackendItem) and item.in_process):
        await release_interpreters()  # this process must be able to fork (untimed)
    if measure.starts_warm and is_pooled(item) and isinstance(item, BackendItem):
        await item.pool_ready()  # a hit is what this row measures
    meter.reset()
    for column, value in (await measure.take(item, meter)).items():
        results.add(column, value)


async def run_rounds(items: list[Item], plan: list[Step], progress: bool) -> list[ItemResults]:
    """Every step over every item, starting each step one item further on
    (so that a noisy moment hits every item alike)."""
    results = [_record(item) for item in items]
    meter = StallMeter()
    async with trio.open_nursery() as tn, AsyncExitStack() as stack:
        tn.start_soon(meter.run)
        for item in items:
            await stack.enter_async_context(item.opened())
        for index, step in enumerate(plan):
            if progress:
                label = f'  [{index + 1}/{len(plan)}] {step.label}: {step.measure.name}'
                print(label, file=sys.stderr, flush=True)
            start = index % len(items)
            for i in [*range(start, len(items)), *range(start)]:
                kept = results[i] if step.kept else _record(items[i])
                await _sample(items[i], kept, step.measure, meter)
        tn.cancel_scope.cancel()
    return results


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The conditions of a run, as the JSON keeps them."""
    load: list[float] | None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        'python': platform.python_version(),
        'implementation': platform.python_implementation(),
        'executable': sys.executable,
        'platform': platform.platform(),
        'machine': platform.machine(),
        'cpus': os.cpu_count(),
        'bytecode': bytecode_mode(),
        'loadavg_at_start': load,
        'env': {
            key: value for key, value in sorted(os.environ.items())
            if key.startswith('TRACTOR_SUBINT_') or key in ('PYTHONDONTWRITEBYTECODE', 'PYTHONPYCACHEPREFIX')
        },
    }


def versions() -> dict[str, str | None]:
    from .. import __version__

    return {
        'tractor_subint': __version__,
        **{name: _version(name) for name in ('trio', 'msgspec', 'outcome')},
    }


def settings(args: argparse.Namespace, keys: Sequence[str], plan: Sequence[Step]) -> dict[str, Any]:
    return {
        'backends': list(keys),
        'warmups': WARMUPS,
        'rounds': args.rounds,
        'parallel_batches': {str(n): b for n, b in _parallel(args).items()},
        'cpu_rounds': args.cpu_rounds,
        'warm_pool': args.warm_pool,
        'bursts': {str(n): b for n, b in _patterns(args).bursts.items()},
        'programs': args.programs,
        'batches128': args.batches128,
        'tree': args.tree,
        'steps': len(plan),
    }


def _header(run: BenchRun) -> str:
    env, ver, s = run.environment, run.versions, run.settings
    batches = ', '.join(f'{_count(b, "batch", "es")} of {n}' for n, b in s['parallel_batches'].items())
    plan = [
        f'{_count(s["warmups"], "warm-up round")} (not kept)',
        f'{_count(s["rounds"], "round")} (a spawn in a long-lived nursery, then a fresh tree: 2 steps each)',
        batches or 'no batches',
        _count(s['cpu_rounds'], 'CPU round'),
    ]
    bursts = ', '.join(f'{_count(b, "burst")} of {n} (each: from cold, then after 1 s idle)'
                       for n, b in s.get('bursts', {}).items() if b)
    plan += [bursts] if bursts else []
    plan += [_count(s['programs'], 'whole program')] if s.get('programs') else []
    plan += [_count(s['batches128'], 'batch', 'es') + ' of 128'] if s.get('batches128') else []
    plan += [f'a tree of {s["tree"]} actors'] if s.get('tree') else []
    pool = 'adaptive' if s['warm_pool'] is None else s['warm_pool']
    return (
        f'tractor_subint {ver["tractor_subint"]} bench: Python {env["python"]} ({env["executable"]}), '
        f'trio {ver["trio"]}, msgspec {ver["msgspec"]}, {env["cpus"]} CPUs\n'
        f'bytecode: {env["bytecode"]}\n'
        f'plan: {s["steps"]} steps, each over every item (interleaved, rotating): {", ".join(plan)}; '
        f'warm pool size {pool}'
    )


def _count(n: int, noun: str, plural: str = 's') -> str:
    return f'{n} {noun}{"" if n == 1 else plural}'


def _patterns(args: argparse.Namespace) -> Patterns:
    bursts = {8: args.bursts8, 32: args.bursts32}
    return Patterns(
        {n: b for n, b in bursts.items() if b}, programs=args.programs, batches128=args.batches128,
        tree=args.tree,
    )


PATTERN_DEFAULTS = {'bursts8': 3, 'bursts32': 1, 'programs': 5, 'batches128': 1, 'tree': 200}
"""The patterns' sample counts of a full run; ``--quick`` takes none unless asked."""


def _parallel(args: argparse.Namespace) -> dict[int, int]:
    batches = {8: args.batches8, 32: args.batches32}
    return {n: b for n, b in batches.items() if b}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--rounds', type=int, default=10, help='sequential samples per item (default 10)')
    parser.add_argument('--batches8', type=int, default=3, help='batches of 8 at once (default 3)')
    parser.add_argument('--batches32', type=int, default=1, help='batches of 32 at once (default 1; 0: none)')
    parser.add_argument(
        '--warm-pool', type=int, default=None,
        help='pool size of the pooled rows (default: adaptive, as a user gets it; 0: no pooled rows)',
    )
    parser.add_argument(
        '--bursts8', type=int, default=None, metavar='N',
        help='bursts of 8 at once, each from cold pools and again after one idle second (default 3)',
    )
    parser.add_argument('--bursts32', type=int, default=None, metavar='N', help='bursts of 32 (default 1)')
    parser.add_argument(
        '--programs', type=int, default=None, metavar='N',
        help='whole one-actor programs per backend, each a fresh process (default 5)',
    )
    parser.add_argument(
        '--batches128', type=int, default=None, metavar='N', help='batches of 128 at once (default 1)',
    )
    parser.add_argument(
        '--tree', type=int, default=None, metavar='N',
        help='actors of a long-lived tree, one after another: its memory growth (in-process pooled rows; '
             'default 200; 0: none)',
    )
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
    parser.add_argument(
        '--imports', action='store_true',
        help="also measure what an actor's interpreter imports before its first message, per kind of "
             'interpreter (-X importtime, fresh processes), and how much of it is ours',
    )
    parser.add_argument(
        '--quick', action='store_true',
        help='2 rounds, one batch of 8, no 32, 1 CPU round, no patterns (bursts, programs, 128, tree) '
             'unless asked',
    )
    parser.add_argument('--progress', action='store_true', help='say on stderr which step runs')
    parser.add_argument(
        '--json', metavar='PATH', help='also write the run (every sample, the environment, the versions) '
                                       'as JSON (schema: bench/README.md)',
    )
    parser.add_argument(
        '--compare', metavar='OLD.json', help="also print this run's medians as ratios to an earlier "
                                              "run's (written with --json)",
    )
    parser.add_argument(
        '--plot', metavar='PATH', help="also draw each item's spawn times (first) into PATH (.png, .svg, "
                                       "...); needs matplotlib: pip install 'tractor_subint[plot]'",
    )
    parser.add_argument(
        '--load', metavar='RUN.json', help='measure nothing: report a run written earlier with --json '
                                           '(with --compare, --plot)',
    )


def _measure(args: argparse.Namespace, argv: Sequence[str]) -> BenchRun:
    keys = args.backends if args.backends is not None else list(available_start_methods())
    items = build_items(keys, args.warm_pool)
    plan = make_plan(args.rounds, _parallel(args), args.cpu_rounds, _patterns(args))
    run = BenchRun(
        started=datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'), duration_s=0.0,
        argv=list(argv), environment=environment(), versions=versions(),
        settings=settings(args, keys, plan), columns=columns_of(plan), items=[],
    )
    print(_header(run), flush=True)
    started = time.monotonic()
    run.items = trio.run(run_rounds, items, plan, args.progress)
    if args.transport:
        rows = measure_transports(n=400 if args.quick else 2000)
        run.transport = [row.as_json() for row in rows]
    if args.imports:
        kinds = measure_imports(repeats=2 if args.quick else 5)
        run.imports = {'kinds': [kind.as_json() for kind in kinds], 'first_message': first_message_modules()}
    run.duration_s = time.monotonic() - started
    print(f'({run.duration_s:.0f} s)\n')
    return run


def _fail(message: str) -> int:
    print(f'bench: {message}', file=sys.stderr)
    return 2


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    old = None
    if args.compare:
        try:
            old = BenchRun.read(args.compare)  # before a long run, not after it
        except ValueError as exc:
            return _fail(f'--compare: {exc}')
    no_plot = plot_unavailable() if args.plot else None
    if no_plot:
        print(f'bench: {no_plot}; the run goes on without it', file=sys.stderr, flush=True)
    if args.load:
        try:
            run = BenchRun.read(args.load)
        except ValueError as exc:
            return _fail(f'--load: {exc}')
        print(_header(run) + f'\n(loaded from {args.load}: measured {run.started}, {run.duration_s:.0f} s)\n')
    else:
        if args.bytecode == 'warm' and sys.pycache_prefix != WARM_CACHE:
            env = {k: v for k, v in os.environ.items() if k != 'PYTHONDONTWRITEBYTECODE'}
            env['PYTHONPYCACHEPREFIX'] = WARM_CACHE
            os.execve(sys.executable, [sys.executable, '-m', 'tractor_subint', 'bench', *argv], env)
        if args.quick:
            args.rounds, args.batches8, args.batches32, args.cpu_rounds = 2, min(args.batches8, 1), 0, 1
        for name, default in PATTERN_DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, 0 if args.quick else default)
        run = _measure(args, argv)
    print(render_tables(run))
    print()
    print(render_legend(run))
    if run.transport:
        print()
        print(render_transports([TransportRow.from_json(row) for row in run.transport]))
        print()
        print(TRANSPORT_LEGEND)
    if run.imports:
        print()
        print(render_run_imports(run.imports))
        print()
        print(IMPORTS_LEGEND)
    if old is not None:
        print()
        print(render_comparison(run, old, args.compare))
    if args.json and not args.load:
        run.write(args.json)
        print(f'\nwrote every sample to {args.json}')
    if args.plot:
        if no_plot:
            print(f'\nno plot: {no_plot}', file=sys.stderr)
        else:
            plot(run, args.plot)
            print(f'\nplotted the spawn times (first) to {args.plot}')
    return 0
