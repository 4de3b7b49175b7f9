"""The measured items: each backend through the public API, and the floor
references a spawn cannot beat (a bare fork; a fork that runs trio)."""
from __future__ import annotations

import gc
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio

from ..runtime import ActorNursery, Portal, open_nursery
from ..runtime._boot import ENTRY
from ..spawn import get_backend, local_warm_pool
from ..spawn.backends.subint import subint_mode
from ..spawn.pool import close_interpreter_pools, close_local_pools, interpreter_pool, warm_up
from ._probes import StallMeter, rss_mib, uss_mib
from .targets import echo, echo_ctx, spin, stream_echo, stream_out

TARGETS = 'tractor_subint.bench.targets'
RTT_CALLS = 20
"""RPC round trips timed per "first" sample, on the actor just spawned."""
STREAM_ITEMS = 5000
"""Small items streamed from the actor per "first" sample (throughput)."""
SPIN = 3_000_000
"""``spin`` iterations of the CPU-bound call (a few hundred ms here)."""


@dataclass
class Sample:
    """One measurement of one item, in milliseconds (memory in MiB)."""

    first: float | None = None
    """Spawn request -> first RPC answered (references: first byte)."""
    end_to_end: float | None = None
    """From nothing to the child reaped (a fresh nursery for backends)."""
    cancel: float | None = None
    """``cancel_actor()`` until it returned (the child reaped)."""
    all_answered: float | None = None
    """A parallel batch: until every child answered."""
    total: float | None = None
    """A parallel batch: until every child was reaped."""
    uss: list[float] = field(default_factory=list)
    spawn_stall: float | None = None
    """A parallel batch: the parent loop's longest gap until every child answered."""
    rtt_us: float | None = None
    """Median RPC round trip on a live actor, microseconds."""
    rtt_slept: float | None = None
    """Of those round trips, the share (%) in which the parent's thread slept
    waiting for the answer (:func:`_sleeps`)."""
    ctx_us: float | None = None
    """Median context round trip (open, started, result) on a live actor, microseconds."""
    stream_rtt_us: float | None = None
    """Median round trip of one item on a context's two-way stream, microseconds."""
    stream_items_s: float | None = None
    """Small items per second that a stream carries from the actor to the parent."""
    cpu_one: float | None = None
    """One actor's CPU-bound call (``spin``), alone."""
    cpu_two: float | None = None
    """The same call in two actors at once, until both answered."""
    fresh_first: float | None = None
    """A fresh nursery: ``open_nursery`` -> spawn -> first RPC answered."""
    burst_first: float | None = None
    """A burst from cold pools: the nursery opened, ``n`` spawned at once, all answered."""
    burst_first_stall: float | None = None
    burst_second: float | None = None
    """The same burst again, in a fresh nursery, after one idle second."""
    burst_second_stall: float | None = None
    program: float | None = None
    """A whole one-actor program: process start -> spawn -> one RPC -> exit."""
    tree_growth: float | None = None
    """The process's RSS growth (MiB) over a tree's sequential actors."""
    tree_cycle: float | None = None
    """Median spawn -> RPC -> cancel cycle of that tree."""


def _sleeps() -> int:
    """How often this thread has gone to sleep (its voluntary context
    switches). A round trip in which it did not sleep was answered while it
    still ran: the child ran on this CPU, which it took over at the request;
    one in which it slept was answered from another CPU, which had to be
    woken (why a round trip here is ~70 or ~140 us:
    ai/conc-anal/rpc_round_trip_placement.md)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


def _slept_share(before: int, trips: int) -> float:
    return min(100.0, (_sleeps() - before) * 100 / trips)


async def _context_trips(portal: Portal) -> tuple[float, float]:
    """Median microseconds of a whole context (``open_context`` entered with
    its ``started`` value, left with its result) and of one item's round
    trip on a context's two-way stream, :data:`RTT_CALLS` of each."""
    contexts = []
    for i in range(RTT_CALLS):
        sent = time.perf_counter()
        async with portal.open_context(echo_ctx, x=i) as (ctx, first):
            assert first == i
        assert await ctx.wait_for_result() == i
        contexts.append(time.perf_counter() - sent)
    trips = []
    async with portal.open_context(stream_echo) as (ctx, _), ctx.open_stream() as stream:
        for i in range(RTT_CALLS + 1):
            sent = time.perf_counter()
            await stream.send(i)
            assert await stream.receive() == i
            trips.append(time.perf_counter() - sent)
    return statistics.median(contexts) * 1e6, statistics.median(trips[1:]) * 1e6


async def _stream_rate(portal: Portal) -> float:
    """Items per second of a one-way stream of :data:`STREAM_ITEMS` small
    ints from the actor, from the first item to the last."""
    async with portal.open_context(stream_out, n=STREAM_ITEMS) as (ctx, _), ctx.open_stream() as stream:
        started, count = 0.0, 0
        async for item in stream:
            if count == 0:
                started = time.perf_counter()
            assert item == count
            count += 1
            if count == STREAM_ITEMS:
                break
        elapsed = time.perf_counter() - started
    return (STREAM_ITEMS - 1) / elapsed


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class Item:
    """One row of the table."""

    name: str
    key: str | None = None
    """The backend's key, for backend rows."""
    pooled = False

    @property
    def in_process(self) -> bool:
        """Whether its actors run in this process (a process that holds their
        interpreters cannot fork)."""
        return False

    async def first(self) -> Sample:
        raise NotImplementedError

    async def end_to_end(self) -> Sample:
        raise NotImplementedError

    async def parallel(self, n: int, *, read_uss: bool, meter: StallMeter) -> Sample:
        raise NotImplementedError

    async def cpu(self) -> Sample:
        """CPU-bound work in one actor, then in two at once (backends only)."""
        return Sample()

    async def burst(self, n: int, meter: StallMeter) -> Sample:
        """``n`` at once from cold (no warm pool yet), then again after one
        idle second."""
        raise NotImplementedError

    async def program(self) -> Sample:
        """A whole one-actor program, as a fresh process (backends only)."""
        return Sample()

    async def tree(self, cycles: int) -> Sample:
        """A long-lived tree of ``cycles`` actors one after another: what it
        leaves in this process (in-process backends with a pool only)."""
        return Sample()

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """What the item keeps open for the whole run."""
        yield


class BackendItem(Item):
    """A backend, driven as a user would: nursery, ``start_actor``, one RPC,
    ``cancel_actor``. "first" is measured in a nursery that stays open for
    the whole run (no per-tree costs), end to end in a fresh one."""

    def __init__(
        self, key: str, *, name: str | None = None, warm_pool: int | None = None,
        interpreter: str | None = None, pooled: bool = False,
    ) -> None:
        self.key = key
        self.name = name or key
        self.warm_pool = warm_pool
        """The nursery's ``warm_pool`` (None: the backend's default)."""
        self.interpreter = interpreter
        self.pooled = pooled
        """A warm pool's row: its samples start with the pool full."""
        self._nursery: ActorNursery | None = None

    @property
    def in_process(self) -> bool:
        return get_backend(self.key).in_process

    async def pool_ready(self) -> None:
        """Until this process's warm pool for this item's actors is full (at
        once without a pool): a ``subint_forkserver`` pool's members, or an
        in-process backend's warm interpreters."""
        # An adaptive pool is dormant until a program's second spawn: woken
        # here, as that spawn would, since a full pool is what this row measures.
        if self.in_process:
            pool = interpreter_pool(subint_mode(self.interpreter), ENTRY, self.warm_pool)
            if pool is not None:
                pool.awaken()
                await trio.to_thread.run_sync(pool.wait_ready, None, 60)
            return
        await warm_up(ENTRY, self.warm_pool, awaken=True)  # (re)started: a burst may have closed it
        members = local_warm_pool(ENTRY)
        if members is not None:
            await trio.to_thread.run_sync(members.wait_ready, None, 60)

    async def _start(self, an: ActorNursery, name: str = 'bench') -> Portal:
        return await an.start_actor(name, enable_modules=[TARGETS], interpreter=self.interpreter)

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:
            self._nursery = an
            try:
                yield
            finally:
                self._nursery = None

    async def first(self) -> Sample:
        assert self._nursery is not None
        started = time.perf_counter()
        portal = await self._start(self._nursery)
        assert await portal.run(echo, x=1) == 1
        first = _ms(started)
        trips = []
        slept = _sleeps()
        for i in range(RTT_CALLS):
            sent = time.perf_counter()
            assert await portal.run(echo, x=i) == i
            trips.append(time.perf_counter() - sent)
        rtt_slept = _slept_share(slept, RTT_CALLS)
        ctx_us, stream_rtt_us = await _context_trips(portal)
        stream_items_s = await _stream_rate(portal)
        cancelling = time.perf_counter()
        await portal.cancel_actor()
        return Sample(
            first=first, cancel=_ms(cancelling), rtt_us=statistics.median(trips) * 1e6, rtt_slept=rtt_slept,
            ctx_us=ctx_us, stream_rtt_us=stream_rtt_us, stream_items_s=stream_items_s,
        )

    async def end_to_end(self) -> Sample:
        started = time.perf_counter()
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:
            portal = await self._start(an)
            assert await portal.run(echo, x=1) == 1
            fresh_first = _ms(started)
            await portal.cancel_actor()
        return Sample(end_to_end=_ms(started), fresh_first=fresh_first)

    async def _all_answer(self, n: int, meter: StallMeter) -> tuple[float, float]:
        """A fresh nursery, ``n`` spawned at once, each asked once: ms until
        all answered, and the loop's longest stall meanwhile."""
        meter.reset()
        started = time.perf_counter()
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:

            async def one(i: int) -> None:
                portal = await self._start(an, f'burst{i}')
                assert await portal.run(echo, x=i) == i

            async with trio.open_nursery() as tn:
                for i in range(n):
                    tn.start_soon(one, i)
            answered, stall = _ms(started), meter.worst * 1000
            await an.cancel()
        return answered, stall

    async def burst(self, n: int, meter: StallMeter) -> Sample:
        await close_pools()  # a program's first burst meets no warm pool (untimed)
        first, first_stall = await self._all_answer(n, meter)
        await trio.sleep(BURST_IDLE)
        second, second_stall = await self._all_answer(n, meter)
        return Sample(
            burst_first=first, burst_first_stall=first_stall,
            burst_second=second, burst_second_stall=second_stall,
        )

    async def program(self) -> Sample:
        command = [sys.executable, '-c', _PROGRAM, self.key, self.interpreter or '', repr(self.warm_pool)]
        started = time.perf_counter()
        done = await trio.to_thread.run_sync(partial(
            subprocess.run, command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        ))
        elapsed = _ms(started)
        if done.returncode != 0 or done.stdout.strip() != 'answered':
            raise RuntimeError(f'the one-actor program failed under {self.name}: {done.stderr[-2000:]}')
        return Sample(program=elapsed)

    async def tree(self, cycles: int) -> Sample:
        if not (self.in_process and self.pooled):
            return Sample()
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:

            async def cycle(i: int) -> float:
                started = time.perf_counter()
                portal = await self._start(an, f'tree{i}')
                assert await portal.run(echo, x=i) == i
                await portal.cancel_actor()
                return _ms(started)

            for i in range(TREE_WARMUP):
                await cycle(i)
            await self.pool_ready()  # the pool settled: what it warms is not the tree's growth
            await trio.to_thread.run_sync(gc.collect)  # as after: what earlier steps left is not either
            before = rss_mib()
            times = [await cycle(i) for i in range(cycles)]
            await trio.to_thread.run_sync(gc.collect)
            growth = rss_mib() - before
        return Sample(tree_growth=growth, tree_cycle=statistics.median(times))

    async def cpu(self) -> Sample:
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:
            first, second = await self._start(an, 'cpu0'), await self._start(an, 'cpu1')
            started = time.perf_counter()
            await first.run(spin, n=SPIN)
            one = _ms(started)
            started = time.perf_counter()
            async with trio.open_nursery() as tn:
                tn.start_soon(partial(first.run, spin, n=SPIN))
                tn.start_soon(partial(second.run, spin, n=SPIN))
            two = _ms(started)
            await an.cancel()
        return Sample(cpu_one=one, cpu_two=two)

    async def parallel(self, n: int, *, read_uss: bool, meter: StallMeter) -> Sample:
        started = time.perf_counter()
        sample = Sample()
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:
            pids: list[int] = []

            async def one(i: int) -> None:
                portal = await self._start(an, f'bench{i}')
                assert await portal.run(echo, x=i) == i
                pids.append(portal.pid)

            async with trio.open_nursery() as tn:
                for i in range(n):
                    tn.start_soon(one, i)
            sample.all_answered = _ms(started)
            sample.spawn_stall = meter.worst * 1000
            if read_uss:
                # An in-process actor has no memory of its own to read.
                own = [pid for pid in pids if pid != os.getpid()]
                sample.uss = [u for u in map(uss_mib, own) if u is not None]
            await an.cancel()
        sample.total = _ms(started)
        return sample


BURST_IDLE = 1.0
"""Seconds between a burst from cold and the next one."""
TREE_WARMUP = 5
"""Actors of a tree before its growth is measured from."""

_PROGRAM = """
import sys, trio
import tractor_subint as ts
from tractor_subint.bench.targets import echo

async def main(key, interpreter, warm_pool):
    async with ts.open_nursery(start_method=key, warm_pool=warm_pool) as an:
        portal = await an.start_actor('program', enable_modules=['tractor_subint.bench.targets'],
                                      interpreter=interpreter)
        assert await portal.run(echo, x=7) == 7
        await portal.cancel_actor()
    print('answered')

trio.run(main, sys.argv[1], sys.argv[2] or None, None if sys.argv[3] == 'None' else int(sys.argv[3]))
"""
"""What ``program`` times as a whole process: a user's one-actor script."""


async def close_pools() -> None:
    """End this process's warm pools (members reaped, interpreters destroyed)."""
    await trio.to_thread.run_sync(close_local_pools)


async def release_interpreters() -> None:
    """Destroy the warm interpreters this process keeps for in-process
    actors: a process that holds a subinterpreter cannot fork, and the fork
    rows (the references among them) must fork here, as they would in a
    program without in-process actors."""
    await trio.to_thread.run_sync(close_interpreter_pools)


def _run_trio_trivially() -> None:
    # What any fork child that runs trio must do first: the parent's wakeup
    # fd (trio's) is inherited, and trio refuses to share it.
    signal.set_wakeup_fd(-1)

    async def nothing() -> None:
        pass

    trio.run(nothing)


class ForkReference(Item):
    """A bare fork from a fresh thread; the child (optionally after ``work``)
    writes one byte, then waits for its hold pipe to close and ``_exit``s.
    No prelude beyond closing the fds it does not need."""

    def __init__(self, name: str, work: Callable[[], None] | None = None) -> None:
        self.name = name
        self._work = work

    def _fork(
        self, work: Callable[[], None] | None = None, keep: tuple[int, ...] = (),
    ) -> tuple[int, int, int]:
        """Fork; the child keeps only its pipes and ``keep`` open, runs
        ``work`` (default: the item's), then writes its byte."""
        ready_r, ready_w = os.pipe()
        hold_r, hold_w = os.pipe()
        pid_box: list[int] = []
        work = work if work is not None else self._work

        def fork_here() -> None:
            pid = os.fork()
            if pid == 0:
                try:
                    for fd in range(3, 1024):
                        if fd not in (ready_w, hold_r, *keep):
                            try:
                                os.close(fd)
                            except OSError:
                                pass
                    if work is not None:
                        work()
                    os.write(ready_w, b'x')
                    os.read(hold_r, 1)
                finally:
                    os._exit(0)
            pid_box.append(pid)

        thread = threading.Thread(target=fork_here)
        thread.start()
        thread.join()
        os.close(ready_w)
        os.close(hold_r)
        return pid_box[0], ready_r, hold_w

    async def _spawn(self) -> tuple[int, int]:
        pid, ready_r, hold_w = await trio.to_thread.run_sync(self._fork)
        try:
            await trio.lowlevel.wait_readable(ready_r)
        finally:
            os.close(ready_r)
        return pid, hold_w

    @staticmethod
    async def _release(pid: int, hold_w: int) -> None:
        os.close(hold_w)
        await trio.to_thread.run_sync(os.waitpid, pid, 0)

    async def first(self) -> Sample:
        started = time.perf_counter()
        pid, hold_w = await self._spawn()
        first = _ms(started)
        await self._release(pid, hold_w)
        return Sample(first=first)

    async def end_to_end(self) -> Sample:
        started = time.perf_counter()
        await self._release(*await self._spawn())
        return Sample(end_to_end=_ms(started))

    async def parallel(self, n: int, *, read_uss: bool, meter: StallMeter) -> Sample:
        started = time.perf_counter()
        children: list[tuple[int, int]] = []

        async def one() -> None:
            children.append(await self._spawn())

        async with trio.open_nursery() as tn:
            for _ in range(n):
                tn.start_soon(one)
        sample = Sample(all_answered=_ms(started), spawn_stall=meter.worst * 1000)
        if read_uss:
            sample.uss = [u for u in (uss_mib(pid) for pid, _ in children) if u is not None]
        async with trio.open_nursery() as tn:
            for pid, hold_w in children:
                tn.start_soon(self._release, pid, hold_w)
        sample.total = _ms(started)
        return sample

    async def burst(self, n: int, meter: StallMeter) -> Sample:
        meter.reset()
        first = await self.parallel(n, read_uss=False, meter=meter)
        await trio.sleep(BURST_IDLE)
        meter.reset()
        second = await self.parallel(n, read_uss=False, meter=meter)
        return Sample(
            burst_first=first.all_answered, burst_first_stall=first.spawn_stall,
            burst_second=second.all_answered, burst_second_stall=second.spawn_stall,
        )


class SocketFloor(ForkReference):
    """The floor of spawn -> first RPC: a fork from a fresh thread whose
    child runs ``trio.run`` and answers one request over a socket pair from
    inside it (what any actor must at least do); "first" ends when this
    side has the reply. No runtime, handshake or lifeline."""

    def _fork_answering(self) -> tuple[int, int, int, socket.socket]:
        mine, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            pid, ready_r, hold_w = self._fork(work=partial(_answer_once, fd), keep=(fd,))
        return pid, ready_r, hold_w, mine

    async def _ask(self, trips: int) -> tuple[int, int, float, list[float], float]:
        """Fork and ask once, then time ``trips`` more round trips on the same
        socket pair: the pid, the hold pipe, when the first answer came
        (``perf_counter``), each trip's seconds, and the share of the trips
        in which this thread slept (:func:`_sleeps`; 0 without trips)."""
        pid, ready_r, hold_w, mine = await trio.to_thread.run_sync(self._fork_answering)
        os.close(ready_r)  # the reply is the signal here
        sock = trio.socket.from_stdlib_socket(mine)
        times = []
        with sock:
            await sock.send(b'?')
            assert await sock.recv(1) == b'!'
            answered = time.perf_counter()
            slept = _sleeps()
            for _ in range(trips):
                sent = time.perf_counter()
                await sock.send(b'?')
                assert await sock.recv(1) == b'!'
                times.append(time.perf_counter() - sent)
            slept_share = _slept_share(slept, trips) if trips else 0.0
        return pid, hold_w, answered, times, slept_share

    async def _spawn(self) -> tuple[int, int]:
        pid, hold_w, _answered, _trips, _slept = await self._ask(0)
        return pid, hold_w

    async def first(self) -> Sample:
        started = time.perf_counter()
        pid, hold_w, answered, trips, slept = await self._ask(RTT_CALLS)
        await self._release(pid, hold_w)
        return Sample(
            first=(answered - started) * 1000, rtt_us=statistics.median(trips) * 1e6, rtt_slept=slept,
        )


def _answer_once(fd: int) -> None:
    """Answer every ``?`` with ``!`` from inside ``trio.run`` until the
    parent closes its end."""
    signal.set_wakeup_fd(-1)  # the parent's (trio's), inherited

    async def answer() -> None:
        sock = trio.socket.from_stdlib_socket(socket.socket(fileno=fd))
        with sock:
            while await sock.recv(1) == b'?':
                await sock.send(b'!')

    trio.run(answer)


def references() -> list[Item]:
    return [
        ForkReference('floor: bare fork'), ForkReference('fork + trio.run', _run_trio_trivially),
        SocketFloor('floor: fork + trio + socket'),
    ]
