"""Children that fail or die during boot, and the late-listener race."""
from __future__ import annotations

import signal

import actor_targets
import pytest
from _rt_helpers import not_reaped

import tractor_subint as ts
from tractor_subint.runtime import _supervise
from tractor_subint.testing import trio_parent_test

HOOKS = 'TRACTOR_SUBINT_TEST_HOOKS'


@pytest.fixture(autouse=True)
def boot_reap_waits_for_ever(monkeypatch):
    """A boot failure is reported as soon as the child is gone, not after the
    runtime's bound on waiting for it (``BOOT_REAP_TIMEOUT``): with that bound
    out of reach, waiting it out would run into the test's own timeout."""
    monkeypatch.setattr(_supervise, 'BOOT_REAP_TIMEOUT', 3600.0)


async def _spawn_failure(modules: list[str]) -> ts.ActorFailure:
    async with ts.open_nursery() as an:
        with pytest.raises(ts.ActorFailure) as info:
            await an.start_actor('doomed', enable_modules=modules)
        assert an.children == []  # the failed child is not kept
    return info.value


@trio_parent_test(timeout=20)
async def test_unimportable_module_is_a_boot_failure(start_method):
    err = await _spawn_failure(['actor_targets', 'no_such_module_for_tractor_subint'])
    assert err.remote_error is not None, str(err)
    assert err.remote_error.type_name == 'ModuleNotFoundError'
    assert 'no_such_module_for_tractor_subint' in str(err)
    assert err.traceback is not None and 'ModuleNotFoundError' in err.traceback


@trio_parent_test(timeout=20)
async def test_module_raising_at_import_is_a_boot_failure(start_method):
    err = await _spawn_failure(['boot_crash_raise'])
    assert err.remote_error is not None, str(err)
    assert err.remote_error.type_name == 'boot_crash_raise.BootCrashError'
    assert err.traceback is not None
    assert 'boot_crash_raise refuses to be imported' in err.traceback
    assert 'boot_crash_raise.py' in err.traceback
    assert '_explode' in err.traceback
    assert 'boot_crash_raise refuses to be imported' in str(err)


@pytest.mark.needs_own_process(reason='the actor ends its process')
@trio_parent_test(timeout=20)
async def test_module_exiting_at_import_is_a_boot_failure(start_method):
    err = await _spawn_failure(['boot_crash_exit'])
    assert err.returncode == 3, str(err)
    assert err.exit_status is not None and err.exit_status.returncode == 3
    assert err.exit_status.signal is None
    assert err.remote_error is None


@pytest.mark.needs_own_process(reason='the actor ends its process')
@trio_parent_test(timeout=20)
async def test_module_segfaulting_at_import_is_a_boot_failure(start_method):
    err = await _spawn_failure(['boot_crash_segv'])
    assert err.exit_status is not None, str(err)
    assert err.exit_status.signal == signal.SIGSEGV, str(err)
    assert err.returncode == -signal.SIGSEGV
    assert 'SIGSEGV' in err.exit_status.describe()


@trio_parent_test(timeout=20)
async def test_late_listener_still_connects(start_method, monkeypatch):
    # The parent starts listening for the hello a second after the child is
    # up (and has long said hello): nothing may be lost.
    monkeypatch.setenv(HOOKS, 'parent_before_handshake=1.0')
    async with ts.open_nursery() as an:
        portal = await an.start_actor('late', enable_modules=['actor_targets'])
        assert portal.spawn_time >= 1.0
        assert await portal.run(actor_targets.add, a=5, b=6) == 11
        assert (await portal.run(actor_targets.whoami))['pid'] == portal.pid
        assert await portal.cancel_actor() is True
    assert not_reaped([portal.pid]) == []


@pytest.mark.needs_own_process(reason='the actor ends its process')
@trio_parent_test(timeout=20)
async def test_child_dying_before_ready_with_late_listener(start_method, monkeypatch):
    # The child exits with 3 before its hello, and the parent only starts
    # listening half a second later: a prompt ActorFailure, no hang.
    monkeypatch.setenv(HOOKS, 'child_exit_before_ready=3,parent_before_handshake=0.5')
    async with ts.open_nursery() as an:
        with pytest.raises(ts.ActorFailure) as info:
            await an.start_actor('dies-early', enable_modules=['actor_targets'])
    assert info.value.returncode == 3, str(info.value)
