"""Warm subinterpreters for in-process ``subint`` actors.

An in-process actor's boot is the import bill of a fresh interpreter (~150-250
ms of CPU: trio, the runtime) plus its creation; and on 3.13 an isolated
interpreter keeps ~9 MiB of the process's memory after it is destroyed
(``ai/conc-anal/isolated_subint_memory_not_returned_on_3_13.md``), so a
long-lived tree grew by that much per actor. An :class:`InterpreterPool`
answers both:

- it keeps interpreters created and warmed (the entry's module imported) by
  a keeper thread, the imports under ``SCHED_IDLE`` (``spawn._priority``), so
  that a spawn takes one in microseconds. Only isolated ones are warmed
  ahead: a legacy interpreter shares the main GIL, and warming one would
  stall the spawning loop;
- an interpreter whose actor ended cleanly is recycled instead of destroyed
  (``_subint_host.recycle_subint`` says what state carries over, and how the
  rest is reset) and goes back to the pool, unless
  ``$TRACTOR_SUBINT_SUBINT_REUSE`` is ``0``.

Sizes follow the process pools' rule (``_sizing``): an explicit
``warm_pool`` is kept, else the pool adapts, here to how many actors run at
once (an interpreter comes back after use: actors spawned one after
another reuse one); idle interpreters beyond the cap, a shrink or the idle
timeout are destroyed. An adaptive pool warms nothing until the second
actor is spawned: a program with one actor would otherwise wait at its exit
for interpreters still importing (one cannot be destroyed mid-import).

A process that holds interpreters cannot fork (``spawn._fork``): while its
pools keep any, its fork-backend spawns go through the tree's forkserver.
The pools end when idle for their timeout, on ``close_local_pools()``, and
at interpreter exit (``atexit``): each way their interpreters are destroyed.
"""
from __future__ import annotations

import atexit
import os
import sys
import threading
import time

from .._subint_host import (
    SubintKind,
    mark_baseline,
    new_subint,
    recycle_subint,
    teardown_subint,
    warm_subint,
)
from ._sizing import Sizing, explicit_size, pool_cap, pool_idle_timeout

REUSE_ENV_VAR = 'TRACTOR_SUBINT_SUBINT_REUSE'
"""``0``: destroy every in-process actor's interpreter when it ends."""
REFILL_DELAY = 0.03
"""Seconds after a take before the keeper creates the next interpreter
(creation is not lowered: it holds the lock forks wait for)."""


def reuse_enabled() -> bool:
    """Whether an interpreter whose actor ended cleanly is recycled."""
    return os.environ.get(REUSE_ENV_VAR, '').strip() != '0'


class InterpreterPool:
    """Warm interpreters of one kind, for actors of one entry."""

    def __init__(self, kind: SubintKind, entry: str, sizing: Sizing) -> None:
        self.kind = kind
        self.modules = ('tractor_subint.spawn._child_host', entry.partition(':')[0])
        self.sys_path = tuple(sys.path)
        self._sizing = sizing
        self._prewarm = kind == 'isolated'
        self._idle: list[int] = []
        """Warm interpreters nobody uses, taken from the end: the one whose
        actor ended last, then the others that hosted actors, then the ones
        warmed and never used. A used interpreter has its arenas grown and
        the lazily imported parts of the runtime loaded already: a fresh
        one's first actor adds a few MiB to the process for good."""
        self._warming: int | None = None
        """The interpreter the keeper is warming now."""
        self._dropping: list[int] = []
        """Interpreters the keeper is destroying now."""
        self._changing = threading.Lock()
        """Held by the keeper from an interpreter's creation until it is
        listed: :meth:`idle` waits for it, so that no live interpreter of
        the pool is ever missing from it."""
        self._in_use = 0
        """Interpreters taken and not yet released: the demand the size follows."""
        self._lock = threading.Condition()
        self._refill_after = 0.0
        self.closed = False
        self._thread = threading.Thread(
            target=self._run, name=f'tractor-subint-interpreters[{kind}]', daemon=True,
        )
        self._thread.start()

    @property
    def size(self) -> int:
        return self._sizing.target

    def idle(self) -> list[int]:
        """The interpreters the pool holds now: warm, warming, or being destroyed."""
        with self._changing, self._lock:
            return self._idle + self._dropping + ([] if self._warming is None else [self._warming])

    def wait_ready(self, count: int | None = None, timeout: float | None = None) -> bool:
        """Block until ``count`` warm interpreters are held, or by default
        until the pool is full and its keeper idle (nothing warming or being
        destroyed: a steady state to measure from); whether it is."""

        def ready() -> bool:
            if count is not None:
                return len(self._idle) >= count
            return len(self._idle) >= self.size and self._warming is None and not self._dropping

        with self._lock:
            return self._lock.wait_for(lambda: self.closed or ready(), timeout) and not self.closed

    @property
    def dormant(self) -> bool:
        """Whether the pool is adaptive and no second actor was spawned yet
        (it warms nothing)."""
        return self._sizing.dormant

    def warming(self) -> int | None:
        """The interpreter the keeper is warming now, if any."""
        with self._lock:
            return self._warming

    def set_size(self, explicit: int | None) -> None:
        with self._lock:
            self._sizing.set_fixed(explicit, time.monotonic())
            self._lock.notify_all()

    def awaken(self) -> None:
        """Wake a dormant pool as a second spawn would (``Sizing.awaken``)."""
        with self._lock:
            self._sizing.awaken(time.monotonic())
            self._lock.notify_all()

    def take(self) -> int | None:
        r"""A warm interpreter for an actor, now the caller's; None if none is
        held (the caller makes one). Either way the caller :meth:`release`\ s
        the actor's interpreter when it ends. The size follows how many are
        in use at once: sequential actors reuse one."""
        with self._lock:
            self._in_use += 1
            self._sizing.wanted(self._in_use, time.monotonic())
            self._refill_after = time.monotonic() + REFILL_DELAY
            self._lock.notify_all()
            return self._idle.pop() if self._idle and not self.closed else None

    def release(self, interp_id: int, *, clean: bool, timeout: float) -> None:
        """An actor in ``interp_id`` (taken or not) has ended: if it ended
        cleanly and reuse is on (:func:`reuse_enabled`), recycle the
        interpreter (``recycle_subint``) and keep it for the next actor;
        else, or if that fails or the pool is full, tear it down."""
        self.abandon()
        reusable = clean and reuse_enabled() and not self.closed and recycle_subint(interp_id, timeout)
        if not (reusable and self._give_back(interp_id)):
            teardown_subint(interp_id, timeout)

    def abandon(self) -> None:
        """A :meth:`take` whose actor never got an interpreter (its creation
        failed): it no longer counts as in use."""
        with self._lock:
            self._in_use = max(0, self._in_use - 1)

    def _give_back(self, interp_id: int) -> bool:
        """Keep ``interp_id``, whose actor ended, for the next actor taken;
        False if the pool is closed or full (the caller destroys it)."""
        with self._lock:
            if self.closed or len(self._idle) >= self._sizing.cap:
                return False
            self._idle.append(interp_id)
            self._lock.notify_all()
            return True

    def _run(self) -> None:
        while True:
            with self._lock:
                surplus: list[int] = []
                while not self.closed:
                    now = time.monotonic()
                    target = self._sizing.tick(now)
                    if target == 0:
                        self.closed = True
                        break
                    if target is not None and len(self._idle) > target:
                        surplus, self._idle = self._idle[:len(self._idle) - target], self._idle[-target:]
                        break
                    if self._prewarm and len(self._idle) < self.size and self._refill_after <= now:
                        break
                    deadline = self._sizing.next_deadline()
                    if self._prewarm and len(self._idle) < self.size:
                        deadline = min(deadline, self._refill_after)
                    self._lock.wait(max(0.0, deadline - now))
                if self.closed:
                    surplus, self._idle = surplus + self._idle, []
                self._dropping = list(surplus)  # still listed until destroyed
                self._lock.notify_all()
            for interp_id in surplus:
                self._drop(interp_id)
            if self.closed:
                return
            if not surplus:
                self._warm_one()

    def _warm_one(self) -> None:
        # Created here, at this thread's priority: creation holds the lock a
        # fork waits for. The imports then run under SCHED_IDLE.
        with self._changing:
            interp_id = new_subint(self.kind)
            with self._lock:
                self._warming = interp_id
        warmed = False
        try:
            warm_subint(interp_id, self.sys_path, self.modules, idle=True)
            mark_baseline(interp_id)
            warmed = True
        finally:
            if not self._settle(interp_id, warmed=warmed):
                self._drop(interp_id)

    def _settle(self, interp_id: int, *, warmed: bool) -> bool:
        """The keeper is done warming ``interp_id``: list it as idle, or, if
        warming failed or the pool is closed or full, as being destroyed
        (the caller then destroys it with :meth:`_drop`); whether it was kept. One step
        under the lock, so that :meth:`idle` never misses a live interpreter
        of the pool."""
        with self._lock:
            self._warming = None
            kept = warmed and not self.closed and len(self._idle) < self._sizing.cap
            if kept:
                self._idle.insert(0, interp_id)
            else:
                self._dropping.append(interp_id)
            self._lock.notify_all()
            return kept

    def _drop(self, interp_id: int) -> None:
        """Destroy ``interp_id``, listed in ``_dropping`` until it is gone."""
        teardown_subint(interp_id)
        with self._lock:
            self._dropping.remove(interp_id)
            self._lock.notify_all()

    def close(self) -> None:
        """Destroy every idle interpreter and stop (blocking). Idempotent."""
        with self._lock:
            self.closed = True
            self._lock.notify_all()
        self._thread.join()


_pools: dict[tuple[SubintKind, str], InterpreterPool] = {}
_pools_lock = threading.Lock()


def interpreter_pool(kind: SubintKind, entry: str, warm_pool: int | None) -> InterpreterPool | None:
    """This interpreter's pool for actors of ``entry`` in ``kind``
    interpreters (started on first use), sized ``warm_pool``; None when
    ``warm_pool`` (or ``$TRACTOR_SUBINT_WARM_POOL``) is 0."""
    size = explicit_size(warm_pool)
    if size == 0:
        return None
    with _pools_lock:
        pool = _pools.get((kind, entry))
        if pool is not None and pool.closed:
            pool.close()
            pool = None
        if pool is None:
            sizing = Sizing(size, created=time.monotonic(), cap=pool_cap(), idle_timeout=pool_idle_timeout())
            pool = _pools[(kind, entry)] = InterpreterPool(kind, entry, sizing)
            return pool
    pool.set_size(size)
    return pool


def local_interpreter_pool(kind: SubintKind, entry: str) -> InterpreterPool | None:
    """This interpreter's open pool for ``kind`` and ``entry``, if any (for
    checks and benchmarks)."""
    pool = _pools.get((kind, entry))
    return None if pool is None or pool.closed else pool


def pooled_interpreters() -> list[int]:
    """The ids of the warm interpreters this interpreter's pools hold idle
    (alive, but no actor's): what an "actor left nothing behind" check
    allows beside the main interpreter."""
    with _pools_lock:
        pools = list(_pools.values())
    # Closed pools too: a pool closed by its idle timeout still destroys its
    # interpreters on its keeper thread, and they are its until then.
    return [interp_id for pool in pools for interp_id in pool.idle()]


def local_interpreter_pools() -> list[InterpreterPool]:
    """This interpreter's open pools."""
    return [pool for pool in _pools.values() if not pool.closed]


def close_interpreter_pools() -> None:
    """Destroy every idle interpreter of this interpreter's pools (blocking)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(close_interpreter_pools)  # a process that never loads the fork pools too
