"""How many members a pool keeps, and for how long.

A size asked for explicitly (a nursery's ``warm_pool=N``, or
``$TRACTOR_SUBINT_WARM_POOL``) is kept as asked, from the start. Without
one the pool adapts to demand: it stays dormant (nothing warms) through a
program's first spawn, so that a program that spawns once never pays for a
pool (members forked or interpreters importing beside its one cold spawn,
then killed or waited for at its exit); the second spawn wakes it to
:data:`DEFAULT_SIZE`, or to the burst's count if bigger. Awake, it grows to
the number of spawns that asked it for a member within
:data:`BURST_WINDOW` (a burst of 8 spawns makes it 8, up to the cap), and
halves every :data:`SHRINK_AFTER` seconds without a spawn (never below
:data:`DEFAULT_SIZE`). Either way a pool that no spawn asked for
:data:`IDLE_TIMEOUT` seconds closes itself (its members are killed and
reaped); the next spawn that wants one starts it again, dormant.

:class:`Sizing` is the rule alone, with the clock passed in, so that tests
can drive it through any sequence of events without waiting.
"""
from __future__ import annotations

import collections
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
BURST_WINDOW = 1.0
"""Seconds over which spawns count as one burst."""
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


def pool_size(requested: int | None) -> int:
    """A fixed size: :func:`explicit_size`, else :data:`DEFAULT_SIZE` (0: no
    pool). For a pool that does not adapt (the forkserver's, sized by each
    request); an adaptive pool starts dormant instead (:class:`Sizing`)."""
    size = explicit_size(requested)
    return DEFAULT_SIZE if size is None else size


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
    burst_window: float = BURST_WINDOW
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
        """Spawns that asked so far (:meth:`asked` and :meth:`wanted` calls)."""
        self._asked: collections.deque[float] = collections.deque()
        self._last_asked = self.created
        self._last_change = self.created

    def asked(self, now: float) -> int:
        """A spawn asked the pool for a member (whether it found one or not;
        a member is used up): count it toward the current burst; return the
        new target."""
        self._asked.append(now)
        while self._asked[0] < now - self.burst_window:
            self._asked.popleft()
        return self._demand(len(self._asked), now)

    def wanted(self, count: int, now: float) -> int:
        """A spawn asked, and ``count`` are wanted at once now (for a pool
        whose members come back after use, where demand is concurrency, not
        rate); return the new target."""
        return self._demand(count, now)

    def _demand(self, count: int, now: float) -> int:
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
