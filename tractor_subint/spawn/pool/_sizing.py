"""How many members a pool keeps, for how long, and when it may refill.

A size asked for explicitly (a nursery's ``warm_pool=N``, or
``$TRACTOR_SUBINT_WARM_POOL``) is kept as asked, from the start. Without
one the pool adapts to demand: it stays dormant (nothing warms) through a
program's first spawn, so that a program that spawns once never pays for a
pool (members forked or interpreters importing beside its one cold spawn,
then killed or waited for at its exit); the second spawn wakes it to
:data:`DEFAULT_SIZE`, or to the demand if bigger. Awake, it grows to the
number of spawns *at once*: for a fork pool, the children its spawns started
that are still booting (:class:`BootLoad`) when a spawn asks, so that 8
spawns at once make it 8 (up to the cap) while any number of spawns one
after another leave it at :data:`DEFAULT_SIZE`. It halves every
:data:`SHRINK_AFTER` seconds without a spawn (never below
:data:`DEFAULT_SIZE`). Either way a pool that no spawn asked for
:data:`IDLE_TIMEOUT` seconds closes itself (its members are killed and
reaped); the next spawn that wants one starts it again, dormant.

A fork pool refills only once the children its spawns started leave a core
spare (:meth:`BootLoad.spare_core_at`): a refill's fork holds the spawner's
GIL and its member's imports take a core, so a refill in the middle of a
burst of cold boots made the burst slower than no pool at all (measured
1.13x vs 1.00x trio on 3.13, 2 cores) and stalled the spawner's loop.

:class:`Sizing` and :class:`BootLoad` are the rules alone, with the clock
passed in, so that tests can drive them through any sequence of events
without waiting.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = 'TRACTOR_SUBINT_WARM_POOL'
"""An explicit size for every pool of the process (0 turns pools off)."""
CAP_ENV_VAR = 'TRACTOR_SUBINT_WARM_POOL_MAX'
"""The most members an adaptive pool grows to."""
IDLE_ENV_VAR = 'TRACTOR_SUBINT_WARM_POOL_IDLE'
"""Seconds without a spawn after which a pool closes itself."""

DEFAULT_SIZE = 2
"""Members an adaptive pool keeps once awake, and an explicit one's size
where none is given (each costs one idle actor's memory, ~20 MiB)."""
DEFAULT_CAP = max(8, 2 * (os.cpu_count() or 1))
"""The most members an adaptive pool keeps: a burst beyond it forks the
rest cold (and ~20 MiB per idle member is what the cap bounds)."""
BOOT_CPU = 0.25
"""CPU seconds a cold ``subint_forkserver`` child is assumed to boot for
until the pool has seen one of its members warm (then: what they took).
Measured with warm bytecode: 0.18-0.26 s (3.13 and 3.14); 2-3x that where
``PYTHONDONTWRITEBYTECODE`` makes every import compile."""
HANDOUT_CPU = 0.005
"""CPU seconds a warm member takes from its hand-out to its actor's first
message."""
SHRINK_AFTER = 10.0
"""Seconds without a spawn after which an adaptive pool halves."""
IDLE_TIMEOUT = 60.0
"""Seconds without a spawn after which a pool closes itself (default of
``$TRACTOR_SUBINT_WARM_POOL_IDLE``)."""


def _whole_number(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f'${name} must be a whole number, got {text!r}') from None
    if value < 0:
        raise ValueError(f'${name} must be >= 0, got {value}')
    return value


def explicit_size(requested: int | None) -> int | None:
    """The size asked for: ``requested``, else ``$TRACTOR_SUBINT_WARM_POOL``;
    None when neither says (the pool adapts). :class:`ValueError` for a
    negative or malformed size."""
    if requested is None:
        text = os.environ.get(ENV_VAR, '').strip()
        if not text:
            return None
        return _whole_number(text, ENV_VAR)
    if requested < 0:
        raise ValueError(f'a warm pool size must be >= 0, got {requested}')
    return requested


def pool_cap() -> int:
    """The most members an adaptive pool keeps: ``$TRACTOR_SUBINT_WARM_POOL_MAX``,
    else :data:`DEFAULT_CAP`."""
    text = os.environ.get(CAP_ENV_VAR, '').strip()
    return _whole_number(text, CAP_ENV_VAR) if text else DEFAULT_CAP


def pool_idle_timeout() -> float:
    """``$TRACTOR_SUBINT_WARM_POOL_IDLE``, else :data:`IDLE_TIMEOUT`."""
    text = os.environ.get(IDLE_ENV_VAR, '').strip()
    if not text:
        return IDLE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f'${IDLE_ENV_VAR} must be a number of seconds > 0, got {text!r}')
    return value


@dataclass
class Sizing:
    """The target size of one pool over time (see the module docstring).

    Times are ``time.monotonic()`` values, passed in by the caller.
    """

    fixed: int | None
    """An explicit size, kept as is; None: adaptive."""
    created: float
    """When the pool started: idleness counts from here until a spawn asks."""
    cap: int = DEFAULT_CAP
    floor: int = DEFAULT_SIZE
    shrink_after: float = SHRINK_AFTER
    idle_timeout: float = IDLE_TIMEOUT

    def __post_init__(self) -> None:
        self.floor = min(self.floor, self.cap)
        self.dormant = self.fixed is None
        """Adaptive and not asked twice yet: the target stays 0 (nothing
        warms, but the pool is open) until a second spawn asks."""
        self.target = 0 if self.fixed is None else self.fixed
        """Members the pool should have now."""
        self.spawns = 0
        """Spawns that asked so far (:meth:`wanted` calls)."""
        self._last_asked = self.created
        self._last_change = self.created

    def wanted(self, count: int, now: float) -> int:
        """A spawn asked, and ``count`` are wanted at once now (this spawn
        included: for a fork pool, the children still booting, see
        :class:`BootLoad`; for an interpreter pool, those in use); return
        the new target. Demand is concurrency, never rate: spawns one after
        another do not grow a pool, however fast they come."""
        self._last_asked = self._last_change = now
        self.spawns += 1
        if self.fixed is None:
            if self.dormant and self.spawns < 2:
                return self.target  # a program's first spawn: warm nothing for it
            self.awaken(now)
            self.target = min(self.cap, max(self.target, count))
        return self.target

    def awaken(self, now: float) -> int:
        """Wake a dormant pool as a second spawn would, without counting a
        spawn (for benchmarks and checks that measure a full pool); return
        the new target."""
        self._last_asked = self._last_change = now
        if self.dormant:
            self.dormant = False
            self.target = max(self.target, self.floor)
        return self.target

    def set_fixed(self, size: int | None, now: float) -> None:
        """A new explicit size (None: adapt from the current target; a
        dormant pool stays dormant). Asking for a size counts as use: the
        idle clock starts again."""
        self.fixed = size
        if size is not None:
            self.dormant = False
            self.target = size
        self._last_asked = self._last_change = now

    def tick(self, now: float) -> int | None:
        """Idleness at ``now``: the new target (0: close the pool), or None
        when nothing changes yet."""
        if now - self._last_asked >= self.idle_timeout:
            self.target = 0
            return 0
        if self.fixed is None and self.target > self.floor and now - self._last_change >= self.shrink_after:
            self.target = max(self.floor, self.target // 2)
            self._last_change = now
            return self.target
        return None

    def next_deadline(self) -> float:
        """When :meth:`tick` may next have something to say."""
        deadline = self._last_asked + self.idle_timeout
        if self.fixed is None and self.target > self.floor:
            deadline = min(deadline, self._last_change + self.shrink_after)
        return deadline


@dataclass
class BootLoad:
    """The children a pool's spawns started that are still booting, as an
    estimate: each needs some CPU seconds, and ``cpus`` cores share them
    equally (processor sharing: one boot alone runs on one core, ``n`` > ``cpus``
    boots each get ``cpus / n`` of one).

    The owner knows when it starts a child, not when the child's actor has
    booted (that handshake is its spawner's); this tells it both how many
    spawns are happening *at once* (the demand :class:`Sizing` follows) and
    when the boots will leave a core spare for a refill.
    """

    cpus: int
    now: float
    """When the estimate was last brought up to date."""

    def __post_init__(self) -> None:
        self.cpus = max(1, self.cpus)
        self._remaining: list[float] = []
        """CPU seconds each booting child still needs."""

    def started(self, cpu_seconds: float, now: float) -> None:
        """A child started booting, needing ``cpu_seconds``."""
        self._advance(now)
        self._remaining.append(cpu_seconds)

    def booting(self, now: float) -> int:
        """How many children are still booting at ``now``."""
        self._advance(now)
        return len(self._remaining)

    def spare_core_at(self, now: float) -> float:
        """When fewer than ``cpus`` children will still be booting (``now``
        if that is already so)."""
        self._advance(now)
        remaining, at = list(self._remaining), now
        while len(remaining) >= self.cpus:
            at += _share(remaining, self.cpus, float('inf'))
        return at

    def _advance(self, now: float) -> None:
        elapsed, self.now = now - self.now, max(self.now, now)
        while elapsed > 0 and self._remaining:
            elapsed -= _share(self._remaining, self.cpus, elapsed)


def _share(remaining: list[float], cpus: int, elapsed: float) -> float:
    """Run ``remaining``'s boots for up to ``elapsed`` seconds, or until the
    next one finishes (it is removed); the seconds that took."""
    rate = min(1.0, cpus / len(remaining))
    took = min(elapsed, min(remaining) / rate)
    done = took * rate
    remaining[:] = [left - done for left in remaining if left - done > 1e-9]
    return took
