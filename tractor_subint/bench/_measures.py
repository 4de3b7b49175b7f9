"""What the benchmark measures: each :class:`Measure` is one kind of sample
that every item takes, and names the columns it fills.

To add a measurement (a usage pattern, a burst, ...): give :class:`Item` a
method that takes one sample of it (``_items``), write a ``take`` function
here that calls it and returns ``{column: value}``, declare its columns
(name, unit, what it is: the legend and the JSON come from them), and give
it steps in :func:`tractor_subint.bench._run.make_plan`. Column names are
the JSON's keys: keep a column's name and meaning once it has shipped
(``bench/README.md``).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._items import BackendItem, Item
from ._probes import StallMeter

Values = dict[str, float | list[float] | None]
"""One sample's values by column: a number, several (memory per child), or
None (not measured for this item)."""


@dataclass(frozen=True)
class Column:
    """One column of the tables, one key of the JSON's samples."""

    name: str
    unit: str
    """``ms``, ``us`` or ``MiB``."""
    doc: str
    """What one sample is (one line of the legend)."""


@dataclass(frozen=True)
class Measure:
    """One kind of sample: ``take(item, meter)`` measures it once."""

    name: str
    columns: tuple[Column, ...]
    take: Callable[[Item, StallMeter], Awaitable[Values]]
    starts_warm: bool = True
    """Whether a pooled item's sample starts with its pool full (else the
    measure sets the pool's state itself, or has none in this process)."""


def is_pooled(item: Item) -> bool:
    """Whether the item's samples start from a full warm pool."""
    return isinstance(item, BackendItem) and item.pooled


def _stall_ms(meter: StallMeter) -> float:
    return meter.worst * 1000


async def _first(item: Item, meter: StallMeter) -> Values:
    sample = await item.first()
    values: Values = {
        'first': sample.first, 'rtt_us': sample.rtt_us, 'rtt_slept': sample.rtt_slept,
        'ctx_us': sample.ctx_us, 'stream_rtt_us': sample.stream_rtt_us,
        'stream_items_s': sample.stream_items_s,
        'cancel': sample.cancel, 'stall': _stall_ms(meter),
    }
    if is_pooled(item) and isinstance(item, BackendItem):
        meter.reset()
        await item.pool_ready()
        values['refill_stall'] = _stall_ms(meter)
    return values


async def _end_to_end(item: Item, meter: StallMeter) -> Values:
    sample = await item.end_to_end()
    return {'e2e': sample.end_to_end, 'fresh_first': sample.fresh_first}


async def _program(item: Item, meter: StallMeter) -> Values:
    return {'program': (await item.program()).program}


async def _cpu(item: Item, meter: StallMeter) -> Values:
    sample = await item.cpu()
    return {'cpu1': sample.cpu_one, 'cpu2': sample.cpu_two}


FIRST = Measure('first', (
    Column('first', 'ms', 'spawn request -> first RPC answered, in a nursery open for the whole run '
                          '(references: fork -> first byte)'),
    Column('rtt_us', 'us', 'one RPC round trip on the live actor (median of 20 after the first; the socket '
                           "floor: one byte's round trip on its raw socket pair, trio on both sides)"),
    Column('rtt_slept', '%', "of those round trips, the share in which the parent's thread slept waiting "
                            'for the answer: ~100, the actor ran on the other CPU, which each request had '
                            "to wake; ~0, on the parent's own (why rtt_us is ~70 or ~140 us on this "
                            'machine: ai/conc-anal/rpc_round_trip_placement.md)'),
    Column('ctx_us', 'us', 'one context on the live actor: open_context() entered with its started() '
                           'value, left with its result (median of 20)'),
    Column('stream_rtt_us', 'us', "one item's round trip on a context's two-way stream (median of 20)"),
    Column('stream_items_s', 'items/s', 'small items (ints) a one-way stream carries from the actor to '
                                        'the parent, per second (5000 of them)'),
    Column('cancel', 'ms', 'cancel_actor() until the child is reaped'),
    Column('stall', 'ms', "the parent's longest event-loop gap during the sample (1 ms ticker; idle "
                          'noise ~1-2 ms)'),
    Column('refill_stall', 'ms', "the parent loop's longest gap while the warm pool refills after it"),
), _first)

END_TO_END = Measure('e2e', (
    Column('e2e', 'ms', 'open_nursery -> spawn -> RPC -> cancel -> reaped, in a fresh nursery'),
    Column('fresh_first', 'ms', 'a nursery per use: open_nursery -> spawn -> first RPC answered, in a '
                                'fresh nursery (the pool, where there is one, is the process\'s)'),
), _end_to_end)

PROGRAM = Measure('program', (
    Column('program', 'ms', 'the first actor of a fresh program, as a whole process: python starts, '
                            'opens a nursery, spawns one actor, one RPC, exits (backends only)'),
), _program, starts_warm=False)

CPU = Measure('cpu', (
    Column('cpu1', 'ms', 'a CPU-bound call (pure Python) in one actor'),
    Column('cpu2', 'ms', 'the same call in two actors at once, until both answered (cpu2 / cpu1: 1.0x '
                         'runs in parallel, 2.0x in turn)'),
), _cpu)


def parallel(n: int, *, read_uss: bool = False) -> Measure:
    """``n`` actors spawned at once (``read_uss``: and the memory of each)."""

    async def take(item: Item, meter: StallMeter) -> Values:
        sample = await item.parallel(n, read_uss=read_uss, meter=meter)
        values: Values = {
            f'par{n}_answered': sample.all_answered,
            f'par{n}_per_actor': None if sample.total is None else sample.total / n,
            f'par{n}_stall': sample.spawn_stall,
        }
        if read_uss:
            values['uss'] = sample.uss
        return values

    columns: tuple[Column, ...] = (
        Column(f'par{n}_answered', 'ms', f'{n} spawned at once, until all answered'),
        Column(f'par{n}_per_actor', 'ms', f'the batch of {n} until all reaped, / {n}'),
        Column(f'par{n}_stall', 'ms', "the parent loop's longest gap from the batch's start until all "
                                      'answered (spawning, not the teardown)'),
    )
    if read_uss:
        columns += (Column('uss', 'MiB', f'unique memory of each live child of a batch of {n}'),)
    return Measure(f'par{n}', columns, take)


def burst(n: int) -> Measure:
    """``n`` at once in a fresh nursery with no warm pool yet, then again
    after one idle second (a program's first burst, and its next)."""

    async def take(item: Item, meter: StallMeter) -> Values:
        sample = await item.burst(n, meter)
        return {
            f'burst{n}_first': sample.burst_first, f'burst{n}_first_stall': sample.burst_first_stall,
            f'burst{n}_second': sample.burst_second, f'burst{n}_second_stall': sample.burst_second_stall,
        }

    columns = (
        Column(f'burst{n}_first', 'ms', f'the first burst: pools closed, a fresh nursery, {n} spawned at '
                                        'once, until all answered'),
        Column(f'burst{n}_first_stall', 'ms', "the parent loop's longest gap during the first burst"),
        Column(f'burst{n}_second', 'ms', f'the same {n} again, in a fresh nursery, after one idle second'),
        Column(f'burst{n}_second_stall', 'ms', "the parent loop's longest gap during the second burst"),
    )
    return Measure(f'burst{n}', columns, take, starts_warm=False)


def tree(cycles: int) -> Measure:
    """A long-lived nursery whose ``cycles`` actors come and go one after
    another: what it leaves in this process (in-process backends with a pool)."""

    async def take(item: Item, meter: StallMeter) -> Values:
        sample = await item.tree(cycles)
        return {f'tree{cycles}_growth': sample.tree_growth, f'tree{cycles}_cycle': sample.tree_cycle}

    columns = (
        Column(f'tree{cycles}_growth', 'MiB', f"this process's RSS growth over {cycles} actors spawned, "
                                              'asked and cancelled one after another in one nursery '
                                              '(after 5, the pool settled; in-process rows with a pool)'),
        Column(f'tree{cycles}_cycle', 'ms', 'median spawn -> RPC -> cancel of that tree'),
    )
    return Measure(f'tree{cycles}', columns, take, starts_warm=False)
