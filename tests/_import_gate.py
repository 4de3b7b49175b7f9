"""Holds a module's import open in one process (see the fork-during-import test)."""
from __future__ import annotations

import os
import threading

holding = threading.Event()
release = threading.Event()


def hold_in(pid: int) -> None:
    """In process ``pid`` only: say so, then wait until released."""
    if os.getpid() == pid:
        holding.set()
        release.wait(30)
