"""Session-wide guarantees: every orphan comes back to us, nothing is left."""
from __future__ import annotations

import os
import signal

import pytest

from tractor_subint.testing import become_subreaper, descendants


@pytest.fixture(scope='session', autouse=True)
def _adopt_orphans():
    """Make pytest a subreaper: orphans of any test's children become ours,
    so the leak check below sees them and they can be reaped."""
    assert become_subreaper(), 'prctl(PR_SET_CHILD_SUBREAPER) failed'
    yield
    become_subreaper(False)


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    """Fail any test that leaves a descendant process (live or zombie)."""
    yield
    left = descendants()
    if not left:
        return
    for info in left:
        try:
            os.kill(info.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for info in left:
        try:
            os.waitpid(info.pid, 0)
        except ChildProcessError:
            pass  # not our direct child; its parent was killed too
    pytest.fail(
        'test left processes behind (now killed and reaped):\n  '
        + '\n  '.join(map(str, left))
    )
