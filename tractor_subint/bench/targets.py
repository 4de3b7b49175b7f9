"""RPC targets of the benchmark's actors (they import this module)."""
from __future__ import annotations


def echo(x: int) -> int:
    return x


def spin(n: int) -> int:
    """Pure-Python CPU work (holds its interpreter's GIL throughout)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
