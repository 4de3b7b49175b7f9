"""A warm pool's owner: ``subint_forkserver`` children forked and warmed ahead of time.

A cold ``subint_forkserver`` spawn spends 75 % of its time importing trio,
msgspec and the runtime inside the child's fresh subinterpreter, and another
10 % creating it. A pool member (``_member``) has done both before it is
needed, so a spawn that takes one costs a handshake, not an import.

:class:`WarmPool` is the owner's bookkeeping and its half of the protocol
(:meth:`WarmPool.on_readable` reads a member's READY, :meth:`WarmPool.hand_out`
sends it its spec), one implementation for both owners: a process that can
fork, whose :class:`PoolKeeper` thread drives it (``_claim`` is its trio
side), and the tree's forkserver, whose poll loop does, for spawns from
subinterpreter-hosted actors. Members are forked like any child (prelude,
report pipe) from a process that holds no subinterpreter. The pool keeps
``size`` members; one that dies while idle is reaped and replaced, never
handed out; when the pool closes, it is drained (idle members are killed
and reaped). A spawn that finds no member forks cold.

Either owner sizes and refills its pool by the same rules
(:class:`PoolDemand`, ``_sizing``): the spawn request's size (a nursery's
``warm_pool``), else ``$TRACTOR_SUBINT_WARM_POOL``, else adaptive, starting
dormant (size 0: nothing warms, the pool stays open) until the owner's
second spawn and then following the spawns at once; 0 asked for turns it
off. A refill waits until the children the spawns started leave a core
spare.
"""
from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .._contract import ChildSpec
from .._fds import close_fds
from .._fork import SubinterpretersAliveError, fork_with_report
from .._priority import hurry
from .._wire import WireChannel
from ._member import READY, WarmUp, handout_frame, parse_boot_cpu, serve_as_pool_member
from ._sizing import BOOT_CPU, HANDOUT_CPU, BootLoad, Sizing

BLOCKED_RETRY = 0.1
"""Seconds between refill attempts while this process holds a
subinterpreter (and so must not fork)."""

REFILL_DELAY = 0.03
"""Seconds the keeper waits, once the children its spawns started leave a
core spare (``_sizing.BootLoad``), before it forks a replacement. A fork at
once (and the new member's ~150 ms of imports) would compete with the
booting child for the CPU and stall the parent's loop meanwhile: measured
on 2 cores, a hit took 8.8-9.4 ms with an immediate refill and 6.0-6.3 ms
with this delay."""

REFILL_SPACING = 0.01
"""Seconds between two members the keeper forks. A fork holds this
process's GIL for 1-5 ms (more with its memory), and the event loop waits
that out; spaced, a refill of 8 costs the loop one fork at a time, not 8
in a row."""

ForkFn = Callable[..., tuple[int, int]]

_CLOCK_TICKS = os.sysconf('SC_CLK_TCK')

_measured_boot_cpu = [BOOT_CPU]
"""The latest warm-up cost a member of this process's pools said: a pool
started afresh (after an idle close, say) starts from it."""


@dataclass
class Member:
    """One pool member, as its owner sees it."""

    pid: int
    report_fd: int
    """Read end of its report pipe; whoever takes the member owns it."""
    control: WireChannel
    ready: bool = False
    idle: bool = False
    """It warms under ``SCHED_IDLE`` until claimed (see ``spawn._priority``)."""
    boot_cpu: float | None = None
    """CPU seconds its warm-up took, as it said with READY."""

    def read_ready(self) -> bool:
        """Read what the member said: True once it said READY, False if it
        said nothing yet; :class:`ConnectionResetError` if it died."""
        try:
            data = self.control.sock.recv(64)
        except BlockingIOError:
            return self.ready
        except OSError:
            data = b''
        if not data.startswith(READY):
            raise ConnectionResetError(f'warm pool member {self.pid} died while idle')
        self.ready = True
        self.boot_cpu = parse_boot_cpu(data)
        return True

    def cpu_seconds(self) -> float:
        """CPU seconds it has used so far (0.0 if that cannot be read)."""
        try:
            with open(f'/proc/{self.pid}/stat', 'rb') as stat:
                fields = stat.read().rpartition(b')')[2].split()
            return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
        except (OSError, IndexError, ValueError):
            return 0.0


class WarmPool:
    """The owner's side of one pool (see the module docstring).

    Thread-safe: a driver (keeper thread or forkserver loop) calls
    :meth:`refill` and :meth:`on_readable`; spawns call :meth:`take` or
    :meth:`claim` from any thread. ``fork`` is how members are forked
    (:func:`~tractor_subint.spawn._fork.fork_with_report`).
    """

    def __init__(self, warm_up: WarmUp, size: int, *, fork: ForkFn = fork_with_report) -> None:
        self.warm_up = warm_up
        self.size = size
        """Members to keep (its driver's rule sets it: a request's size in
        the forkserver, :class:`Sizing` under a keeper)."""
        self._fork = fork
        self._members: dict[int, Member] = {}
        """By control fd."""
        self._lock = threading.Condition()
        self._refilling = threading.Lock()
        """One refill at a time (the keeper's, or a nursery's first fill)."""
        self.refill_blocked = threading.Event()
        """Set while refilling waits for this process to be able to fork
        again (it holds a subinterpreter)."""
        self.on_forked: Callable[[], None] | None = None
        """Called after :meth:`refill` forked members (a keeper's wake-up:
        it then watches them too, whoever refilled)."""
        self.boot_cpu = _measured_boot_cpu[0]
        """CPU seconds a member's warm-up took, the latest one said in this
        process (a cold child's boot costs the same): what
        ``_sizing.BootLoad`` counts a cold spawn for."""
        self._closed = False

    # -- driver side --------------------------------------------------------------

    def refill(self, limit: int | None = None) -> list[int]:
        """Fork members until there are :attr:`size` (at most ``limit`` of
        them now); return their control fds."""
        with self._refilling:
            added = self._refill(limit)
        if added:
            self.refill_blocked.clear()  # whoever forked: this process can
            if self.on_forked is not None:
                self.on_forked()
        return added

    def missing(self) -> int:
        """How many members short of :attr:`size` the pool is."""
        with self._lock:
            return 0 if self._closed else max(0, self.size - len(self._members))

    def _refill(self, limit: int | None) -> list[int]:
        added: list[int] = []
        while limit is None or len(added) < limit:
            with self._lock:
                if self._closed or len(self._members) >= self.size:
                    return added
            member = self._fork_member()
            with self._lock:
                self._members[member.control.fileno()] = member
            added.append(member.control.fileno())
        return added

    def _fork_member(self) -> Member:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pid, report_fd = self._fork(
                partial(serve_as_pool_member, theirs.fileno(), self.warm_up),
                thread_name='tractor-subint-pool-fork',
                keep_fds=(theirs.fileno(),),
                stdio='inherit',  # a handout brings the spawner's own
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return Member(pid, report_fd, WireChannel(ours), idle=self.warm_up.idle)

    def trim(self) -> None:
        """Kill and reap members beyond :attr:`size` (blocking), those still
        warming first: their CPU is not spent yet."""
        with self._lock:
            surplus = len(self._members) - self.size
            doomed = sorted(self._members.items(), key=lambda item: item[1].ready)[:max(0, surplus)]
            for fd, _member in doomed:
                del self._members[fd]
        for _fd, member in doomed:
            self._bury(member, kill=True)

    def watched_fds(self) -> list[int]:
        with self._lock:
            return list(self._members)

    def on_readable(self, fd: int) -> None:
        """A member's control socket is readable: it is ready, or it died."""
        with self._lock:  # so that a claim and this read never split a member
            member = self._members.get(fd)
            if member is None:
                return  # claimed meanwhile: not ours to watch any more
            try:
                if member.read_ready():
                    if member.boot_cpu is not None:
                        self.boot_cpu = _measured_boot_cpu[0] = member.boot_cpu
                    self._lock.notify_all()
                return
            except ConnectionResetError:
                del self._members[fd]  # died while idle: never handed out
        self._bury(member)

    # -- spawn side -------------------------------------------------------------------

    def take(self) -> Member | None:
        """A ready, live member, now the caller's (its pid, report pipe and
        control socket); None if there is none."""
        return self._claim(lambda member: member.ready)

    def claim(self) -> Member | None:
        """A live member, ready or else still warming (it started before any
        cold fork could; it finishes warming before it hosts its spec), now
        the caller's; None if the pool has none."""
        return self.take() or self._claim(lambda member: not member.ready)

    @staticmethod
    def hand_out(
        member: Member, spec: ChildSpec, *, stdio: str, stdio_fds: tuple[int, ...] = (),
        cwd: str, environ: dict[str, str],
    ) -> None:
        """Queue on a claimed member's control channel what makes it the child
        a cold fork would be now: ``spec`` with its IPC socket, and the
        spawner's stdio (``stdio_fds``, its fds 0/1/2, when inherited; else
        the ``stdio`` policy), working directory and environment.

        The caller flushes the channel (``WireChannel.flush_nowait`` when the
        socket is writable), then closes it. Ready or still warming, the
        member takes it when it can; one still warming under ``SCHED_IDLE``
        is hurried first (``spawn._priority``): a spawn now waits for it.
        """
        if not member.ready and member.idle:
            hurry(member.pid)
        frame = handout_frame(spec, stdio=stdio, cwd=cwd, environ=environ)
        member.control.queue(frame, (spec.ipc_fd, *stdio_fds))

    def _claim(self, wanted: Callable[[Member], bool]) -> Member | None:
        with self._lock:
            for fd, member in list(self._members.items()):
                if wanted(member) and _alive(member.control):
                    del self._members[fd]
                    return member
            return None

    def wait_ready(self, count: int | None = None, timeout: float | None = None) -> bool:
        """Block until ``count`` (default: :attr:`size`) members are ready;
        whether they are."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self._closed or self._ready_count() >= (self.size if count is None else count),
                timeout,
            ) and not self._closed

    def ready_pids(self) -> list[int]:
        with self._lock:
            return [m.pid for m in self._members.values() if m.ready]

    def member_pids(self) -> list[int]:
        with self._lock:
            return [m.pid for m in self._members.values()]

    def held_fds(self) -> set[int]:
        """The fds this process holds for the pool's members (each: its
        control socket, its report pipe): as many as the pool has members,
        whose number follows demand (for checks that count a process's fds)."""
        with self._lock:
            return {fd for m in self._members.values() for fd in (m.control.fileno(), m.report_fd)}

    def _ready_count(self) -> int:
        return sum(member.ready for member in self._members.values())

    # -- the end ------------------------------------------------------------------------

    def drain(self) -> None:
        """Kill and reap every idle member (blocking); the pool takes no more."""
        with self._lock:
            self._closed = True
            members, self._members = list(self._members.values()), {}
            self._lock.notify_all()
        for member in members:
            self._bury(member, kill=True)

    @staticmethod
    def _bury(member: Member, *, kill: bool = False) -> None:
        member.control.close()
        if kill:
            if member.idle:
                hurry(member.pid)  # a thread must run to die: let it
            os.kill(member.pid, signal.SIGKILL)  # still unreaped: the pid is its
        os.waitpid(member.pid, 0)
        close_fds([member.report_fd])


def _alive(control: WireChannel) -> bool:
    """No hang-up on a member's control socket (and nothing but READY read)."""
    poller = select.poll()
    poller.register(control.fileno(), select.POLLRDHUP)
    return not poller.poll(0)


def poll_timeout_ms(deadline: float, now: float) -> int:
    """A ``poll()`` timeout that ends just after ``deadline`` (whole ms,
    rounded up: a poll that woke a little early would spin)."""
    return max(0, int((deadline - now) * 1000) + 1)


class PoolDemand:
    """A pool's size and refill timing, the ``_sizing`` rules as one owner
    applies them: thread-free and clock-free (times are ``time.monotonic()``
    values passed in), so that the keeper thread here and the forkserver's
    poll loop drive their pools alike. The caller serialises the calls."""

    def __init__(self, pool: WarmPool, sizing: Sizing, *, cpus: int, now: float) -> None:
        self.pool = pool
        self.sizing = sizing
        pool.size = sizing.target
        self._boots = BootLoad(cpus, now)
        """The children this pool's spawns started, still booting."""
        self.refill_after = 0.0
        """No member is forked before this time."""

    def set_size(self, explicit: int | None, now: float) -> bool:
        """The size a spawner asks for (None: adapt to demand); whether the
        target changed."""
        self.sizing.set_fixed(explicit, now)
        resized = self.pool.size != self.sizing.target
        self.pool.size = self.sizing.target
        return resized

    def spawned(self, member: Member | None, *, now: float) -> None:
        """A spawn asked for a member and started a child: ``member``, ready
        or still warming, or a cold one (None). Count it (a dormant pool
        wakes at the second spawn, an adaptive one grows to the number of
        spawns at once), and refill only once the children still booting
        leave a core spare, plus :data:`REFILL_DELAY`."""
        self._boots.started(self.boot_left(member), now)
        self.pool.size = self.sizing.wanted(self._boots.booting(now), now)
        self.refill_after = self._boots.spare_core_at(now) + REFILL_DELAY

    def boot_left(self, member: Member | None) -> float:
        """CPU seconds the child of a spawn still needs to boot: a cold one
        all of a boot, a member still warming what it has not spent of one
        yet, a ready one its hand-out."""
        if member is None:
            return self.pool.boot_cpu
        if member.ready:
            return HANDOUT_CPU
        return max(HANDOUT_CPU, self.pool.boot_cpu - member.cpu_seconds())

    def awaken(self, now: float) -> None:
        """Wake a dormant pool as a second spawn would (``Sizing.awaken``)."""
        self.pool.size = self.sizing.awaken(now)

    def tick(self, now: float) -> int | None:
        """Idleness at ``now`` (``Sizing.tick``): the new size, applied to the
        pool (0: close it; the caller trims or drains), or None."""
        target = self.sizing.tick(now)
        if target is not None:
            self.pool.size = target
        return target

    def forked_one(self, now: float) -> None:
        """A member was just forked: the next one not before
        :data:`REFILL_SPACING`."""
        if self.pool.missing():
            self.refill_after = max(self.refill_after, now + REFILL_SPACING)

    def next_deadline(self, now: float) -> float:
        """When :meth:`tick` or a refill may next have something to do."""
        deadline = self.sizing.next_deadline()
        if self.pool.missing():
            deadline = min(deadline, max(now, self.refill_after))
        return deadline


class PoolKeeper:
    """Drives a :class:`WarmPool` from a thread: refills it, watches its
    members, and sizes it by its :class:`Sizing` rule, so that the owner's
    event loop never blocks on any of it. A pool idle for the rule's
    timeout is drained and the keeper stops (:attr:`closed`)."""

    def __init__(self, pool: WarmPool, sizing: Sizing) -> None:
        self.pool = pool
        self._demand = PoolDemand(pool, sizing, cpus=os.process_cpu_count() or 1, now=time.monotonic())
        self._demand_lock = threading.Lock()
        pool.on_forked = self.wake  # members forked elsewhere are watched at once
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self.closed = False
        """Whether the pool is closed (by :meth:`close`, or idle for too long)."""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name='tractor-subint-pool', daemon=True)
        self._thread.start()

    @property
    def refill_at(self) -> float:
        """``time.monotonic()`` before which the keeper forks no member."""
        return self._demand.refill_after

    def wake(self) -> None:
        """Look again now (the size changed, the pool closes)."""
        try:
            os.write(self._wake_w, b'x')
        except OSError:
            pass  # stopped, or the pipe is full of wake-ups already

    def set_size(self, explicit: int | None) -> None:
        """The size a nursery asks for (None: adapt to demand)."""
        with self._demand_lock:
            resized = self._demand.set_size(explicit, time.monotonic())
        if resized:
            self.wake()

    def claiming(self) -> None:
        """A spawn is about to take a member: no refill before it says what
        it started (:meth:`spawned`). The member it takes hangs up its
        control socket, which wakes this thread; without this, a refill
        whose time had come before the spawn would fork in the middle of it."""
        with self._demand_lock:
            now = time.monotonic()
            self._demand.refill_after = max(self._demand.refill_after, now + REFILL_DELAY)

    def spawned(self, member: Member | None) -> None:
        """A spawn took ``member`` or found none (``PoolDemand.spawned``)."""
        with self._demand_lock:
            self._demand.spawned(member, now=time.monotonic())
        self.wake()

    def awaken(self) -> None:
        """Wake a dormant pool as a second spawn would (``Sizing.awaken``)."""
        with self._demand_lock:
            self._demand.awaken(time.monotonic())
        self.wake()

    def _run(self) -> None:
        try:
            while not self._stopping:
                if not self._apply_sizing():
                    break
                now = time.monotonic()
                if self._demand.refill_after <= now and self.pool.missing() and not self._try_refill():
                    continue
                with self._demand_lock:
                    deadline = self._demand.next_deadline(time.monotonic())
                timeout_ms = poll_timeout_ms(deadline, now)
                poller = select.poll()
                poller.register(self._wake_r, select.POLLIN)
                for fd in self.pool.watched_fds():
                    poller.register(fd, select.POLLIN | select.POLLRDHUP)
                for fd, _mask in poller.poll(timeout_ms):
                    if fd == self._wake_r:
                        os.read(self._wake_r, 512)
                    else:
                        self.pool.on_readable(fd)
        except BaseException as exc:  # reported by close()
            self._error = exc
        finally:
            self.pool.drain()  # the pool takes no more members from here on
            self.closed = True

    def _apply_sizing(self) -> bool:
        """Shrink (or close) the pool if it has been idle; False once closed."""
        with self._demand_lock:
            target = self._demand.tick(time.monotonic())
        if target == 0:
            return False
        if target is not None:
            self.pool.trim()
        return True

    def _try_refill(self) -> bool:
        """Fork one member (the next one :data:`REFILL_SPACING` later); False
        if this process cannot fork right now because it holds a
        subinterpreter (an in-process ``subint`` actor, say): the keeper
        tries again after :data:`BLOCKED_RETRY` instead of dying."""
        try:
            self.pool.refill(limit=1)
            with self._demand_lock:
                self._demand.forked_one(time.monotonic())
        except SubinterpretersAliveError:
            # Decided by the refusal itself: asking can_fork_here() now could
            # find the subinterpreter already gone, and the keeper would die.
            self.pool.refill_blocked.set()
            with self._demand_lock:
                self._demand.refill_after = time.monotonic() + BLOCKED_RETRY
            return False
        self.pool.refill_blocked.clear()
        return True

    def close(self) -> None:
        """Stop the thread, drain the pool (blocking). Idempotent."""
        self._stopping = True
        self.wake()
        self._thread.join()
        if self._wake_w >= 0:
            close_fds([self._wake_r, self._wake_w])
            self._wake_r = self._wake_w = -1
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f'the warm pool keeper failed: {error!r}') from error
