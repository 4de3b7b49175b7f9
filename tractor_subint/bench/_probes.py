"""What the benchmark reads besides durations: the parent's event-loop stall
and the memory each child costs."""
from __future__ import annotations

import time

import trio

TICK = 0.001


class StallMeter:
    """A 1 ms ticker in the parent's trio loop: :attr:`worst` is the longest
    gap between two ticks since the last :meth:`reset` (a stalled loop ticks
    late)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()

    def reset(self) -> None:
        self.worst = 0.0
        self._last = time.perf_counter()

    async def run(self) -> None:
        while True:
            await trio.sleep(TICK)
            now = time.perf_counter()
            self.worst = max(self.worst, now - self._last)
            self._last = now


def uss_mib(pid: int) -> float | None:
    """Unique set size (private pages) of ``pid`` in MiB, or None if unreadable."""
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            fields = dict(line.split(':', 1) for line in f if ':' in line)
    except OSError:
        return None
    kib = sum(int(fields[k].split()[0]) for k in ('Private_Clean', 'Private_Dirty') if k in fields)
    return kib / 1024


def rss_mib() -> float:
    """This process's resident set size in MiB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    raise LookupError('VmRSS')
