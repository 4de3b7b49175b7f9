"""Closing fds that may already be gone."""
from __future__ import annotations

import os
from collections.abc import Iterable


def close_fds(fds: Iterable[int | None]) -> None:
    """Close each fd, skipping None and ignoring one already closed."""
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
