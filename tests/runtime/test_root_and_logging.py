"""The root actor, ``is_root_process``, ``loglevel=`` and ``tractor_subint.log``
(issue 18, item 5)."""
from __future__ import annotations

import logging

import api_targets
import pytest

import tractor_subint as ts
from tractor_subint.log import console_level, disable_console
from tractor_subint.testing import trio_parent_test

MODULES = ['api_targets']


@pytest.fixture(autouse=True)
def _console_off():
    disable_console()
    yield
    disable_console()


@trio_parent_test(timeout=20)
async def test_open_root_actor_makes_this_the_root(start_method):
    assert ts.is_root_process()  # outside any actor: a root to be
    async with ts.open_root_actor(name='boss', loglevel='cancel') as root:
        assert ts.current_actor() is root
        assert root.is_root and root.name == 'boss'
        assert ts.is_root_process()
        assert console_level() == 'CANCEL'  # tractor's level names are accepted
        with pytest.raises(RuntimeError, match='already runs here'):
            async with ts.open_root_actor():
                pass
        async with ts.open_nursery() as an:
            assert ts.current_actor() is root
            portal = await an.start_actor('child', enable_modules=MODULES)
            facts = await portal.run(api_targets.actor_facts)
            assert facts['is_root_process'] is False and facts['is_root'] is False
            assert facts['console_level'] == 'CANCEL'  # inherited
            assert portal.chan.aid.name == 'child'
            assert portal.chan.aid.uid == portal.uid
            await portal.cancel_actor()
        assert ts.current_actor() is root  # the nursery did not end the root
    with pytest.raises(RuntimeError, match='no actor runtime'):
        ts.current_actor()


@trio_parent_test(timeout=20)
async def test_loglevel_is_accepted_where_tractor_accepts_it(start_method):
    async with ts.open_nursery(loglevel='error') as an:
        assert console_level() == 'ERROR'
        default = await an.start_actor('default', enable_modules=MODULES)
        chatty = await an.start_actor('chatty', enable_modules=MODULES, loglevel='info')
        one_shot = await an.run_in_actor(api_targets.actor_facts, loglevel='runtime')
        assert (await default.run(api_targets.actor_facts))['console_level'] == 'ERROR'
        assert (await chatty.run(api_targets.actor_facts))['console_level'] == 'INFO'
        await default.cancel_actor()
        await chatty.cancel_actor()
    assert (await one_shot.wait_for_result())['console_level'] == 'RUNTIME'
    with pytest.raises(ValueError, match='not a logging level'):
        async with ts.open_nursery(loglevel='chatty'):
            pass


def test_log_module_speaks_tractor_s_names():
    log = ts.log.get_logger('multiportal')
    assert isinstance(log, logging.Logger)
    assert log.name == 'tractor_subint.multiportal'
    console = ts.log.get_console_log('INFO')
    assert console.name == 'tractor_subint'
    assert console_level() == 'INFO'
    assert ts.log.get_console_log().name == 'tractor_subint'  # no level: the console stays as is
    assert console_level() == 'INFO'
