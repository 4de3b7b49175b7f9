"""RPC targets of the benchmark's actors (they import this module)."""
from __future__ import annotations


def echo(x: int) -> int:
    return x
