"""Issue 17, item 8: Ctrl-C while the tree's forkserver is starting gives only
the ``KeyboardInterrupt`` (status 130): the forkserver, which shares the
terminal's process group, prints nothing, and nothing is left."""
from __future__ import annotations

import signal

import pytest
from _rt_helpers import ScriptProcess, script_env

from tractor_subint.spawn._hooks import HOOKS_ENV
from tractor_subint.testing import trio_parent_test


@trio_parent_test(timeout=40)
async def test_ctrl_c_while_the_trees_forkserver_starts(start_method, tmp_path):
    if start_method != 'subint_forkserver':
        pytest.skip(f"{start_method}: nested spawns do not start the tree's forkserver")
    env = script_env(start_method, **{HOOKS_ENV: 'forkserver_sigint_at_exec=1'})
    async with ScriptProcess.running('ctrl_c_at_forkserver_start.py', env, tmp_path,
                                     timeout=30) as script:
        rest = await script.read_rest()
        rc = await script.proc.wait()
    assert 'FORKSERVER_NOT_USED' not in rest
    stderr = script.stderr()
    assert rc in (130, -signal.SIGINT), script.describe()  # a shell says 130 for both
    assert 'Fatal Python error' not in stderr and 'init_import_site' not in stderr, stderr
    assert 'did not exit' not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == 'KeyboardInterrupt', stderr
