"""The measured items: each backend through the public API, and the floor
references a spawn cannot beat (a bare fork; a fork that runs trio)."""
from __future__ import annotations

import os
import signal
import statistics
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
from ..spawn.pool import close_interpreter_pools, interpreter_pool
from ._probes import StallMeter, uss_mib
from .targets import echo, echo_ctx, spin, stream_echo

TARGETS = 'tractor_subint.bench.targets'
RTT_CALLS = 20
"""RPC round trips timed per "first" sample, on the actor just spawned."""
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
    ctx_us: float | None = None
    """Median context round trip (open, started, result) on a live actor, microseconds."""
    stream_rtt_us: float | None = None
    """Median round trip of one item on a context's two-way stream, microseconds."""
    cpu_one: float | None = None
    """One actor's CPU-bound call (``spin``), alone."""
    cpu_two: float | None = None
    """The same call in two actors at once, until both answered."""


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


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class Item:
    """One row of the table."""

    name: str
    key: str | None = None
    """The backend's key, for backend rows."""

    async def first(self) -> Sample:
        raise NotImplementedError

    async def end_to_end(self) -> Sample:
        raise NotImplementedError

    async def parallel(self, n: int, *, read_uss: bool, meter: StallMeter) -> Sample:
        raise NotImplementedError

    async def cpu(self) -> Sample:
        """CPU-bound work in one actor, then in two at once (backends only)."""
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
        interpreter: str | None = None,
    ) -> None:
        self.key = key
        self.name = name or key
        self.warm_pool = warm_pool
        self.interpreter = interpreter
        self._nursery: ActorNursery | None = None

    @property
    def in_process(self) -> bool:
        return get_backend(self.key).in_process

    async def pool_ready(self) -> None:
        """Until this process's warm pool for this item's actors is full (at
        once without a pool): a ``subint_forkserver`` pool's members, or an
        in-process backend's warm interpreters."""
        if self.in_process:
            pool = interpreter_pool(subint_mode(self.interpreter), ENTRY, self.warm_pool)
            if pool is not None:
                await trio.to_thread.run_sync(pool.wait_ready, None, 60)
            return
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
        for i in range(RTT_CALLS):
            sent = time.perf_counter()
            assert await portal.run(echo, x=i) == i
            trips.append(time.perf_counter() - sent)
        ctx_us, stream_rtt_us = await _context_trips(portal)
        cancelling = time.perf_counter()
        await portal.cancel_actor()
        return Sample(
            first=first, cancel=_ms(cancelling), rtt_us=statistics.median(trips) * 1e6,
            ctx_us=ctx_us, stream_rtt_us=stream_rtt_us,
        )

    async def end_to_end(self) -> Sample:
        started = time.perf_counter()
        async with open_nursery(start_method=self.key, warm_pool=self.warm_pool) as an:
            portal = await self._start(an)
            assert await portal.run(echo, x=1) == 1
            await portal.cancel_actor()
        return Sample(end_to_end=_ms(started))

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

    def _fork(self) -> tuple[int, int, int]:
        ready_r, ready_w = os.pipe()
        hold_r, hold_w = os.pipe()
        pid_box: list[int] = []

        def fork_here() -> None:
            pid = os.fork()
            if pid == 0:
                try:
                    for fd in range(3, 1024):
                        if fd not in (ready_w, hold_r):
                            try:
                                os.close(fd)
                            except OSError:
                                pass
                    if self._work is not None:
                        self._work()
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


def references() -> list[Item]:
    return [ForkReference('floor: bare fork'), ForkReference('fork + trio.run', _run_trio_trivially)]
