"""The spawn-method registry and the subint_fork dead-end stub."""
from __future__ import annotations

import pathlib
import re
from typing import get_args

import pytest
import trio

from tractor_subint.spawn import SpawnRequest, _spawn
from tractor_subint.spawn._spawn import (
    SpawnMethodKey,
    available_start_methods,
    unusable_reason,
    current_start_method,
    get_spawn_fn,
    try_set_start_method,
)
from tractor_subint.spawn._subint_fork import subint_fork_proc

REPO = pathlib.Path(__file__).resolve().parents[2]
REQUEST = SpawnRequest(name='probe', entry='tractor_subint:__version__', ipc_fd=0)


@pytest.fixture(autouse=True)
def _fresh_selection(monkeypatch):
    """Each test starts with nothing selected and no environment override."""
    monkeypatch.delenv(_spawn.ENV_VAR, raising=False)
    monkeypatch.setattr(_spawn, '_spawn_method', None)


def test_spawn_method_keys():
    assert set(get_args(SpawnMethodKey)) == {
        'trio', 'main_thread_forkserver', 'subint_forkserver', 'subint', 'subint_fork',
    }
    assert set(_spawn._methods) == set(get_args(SpawnMethodKey))


@pytest.mark.parametrize('key', get_args(SpawnMethodKey))
def test_try_set_start_method_accepts_every_key(key):
    assert try_set_start_method(key) == key
    assert current_start_method() == key


def test_unknown_key_names_the_valid_ones():
    with pytest.raises(ValueError) as err:
        try_set_start_method('mp_forkserver')
    assert "'mp_forkserver'" in str(err.value)
    for key in get_args(SpawnMethodKey):
        assert key in str(err.value)
    assert current_start_method() == 'trio'


def test_unsupported_python_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_interpreters(name, *args, **kwargs):
        if name == '_interpreters':
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_interpreters)
    with pytest.raises(RuntimeError, match=r"'subint_forkserver' needs subinterpreters .*CPython >= 3\.13"):
        try_set_start_method('subint_forkserver')
    assert try_set_start_method('trio') == 'trio'  # unaffected


def test_missing_fork_is_a_clear_error(monkeypatch):
    monkeypatch.delattr('os.fork')
    with pytest.raises(RuntimeError, match=r"'main_thread_forkserver' needs os\.fork\(\)"):
        try_set_start_method('main_thread_forkserver')


def test_reserved_subint_backend_says_so():
    with pytest.raises(NotImplementedError, match="spawn method 'subint' is not available yet"):
        trio.run(get_spawn_fn('subint'), REQUEST)


def test_working_backends_are_registered():
    assert available_start_methods() == ('trio', 'main_thread_forkserver', 'subint_forkserver')
    for key in available_start_methods():
        assert unusable_reason(key) is None
        assert get_spawn_fn(key).__name__ == f'{key}_proc'
    assert 'reserved' in unusable_reason('subint')
    assert 'ai/conc-anal/' in unusable_reason('subint_fork')
    assert 'unknown' in unusable_reason('mp_spawn')


def test_default_is_trio_then_env_then_explicit(monkeypatch):
    assert current_start_method() == 'trio'
    assert get_spawn_fn().__name__ == 'trio_proc'
    monkeypatch.setenv(_spawn.ENV_VAR, 'subint_forkserver')
    assert current_start_method() == 'subint_forkserver'
    try_set_start_method('main_thread_forkserver')
    assert current_start_method() == 'main_thread_forkserver'


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(_spawn.ENV_VAR, 'fork_bomb')
    with pytest.raises(ValueError, match=r'\$TRACTOR_SUBINT_SPAWN_METHOD: unknown spawn method'):
        current_start_method()


def test_spawn_request_rejects_bad_input():
    with pytest.raises(ValueError, match='entry'):
        SpawnRequest(name='x', entry='no_colon', ipc_fd=0)
    with pytest.raises(ValueError, match='ipc_fd'):
        SpawnRequest(name='x', entry='a:b')


def test_subint_fork_stub_explains_the_dead_end():
    with pytest.raises(NotImplementedError) as err:
        trio.run(subint_fork_proc, REQUEST)
    message = str(err.value)
    assert 'not main interpreter' in message
    assert "start_method='subint_forkserver'" in message
    doc = re.search(r'ai/conc-anal/\S+\.md', message)
    assert doc and (REPO / doc.group(0)).is_file(), f'{doc} does not exist'
    assert get_spawn_fn('subint_fork') is subint_fork_proc
