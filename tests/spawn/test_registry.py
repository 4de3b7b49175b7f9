"""The spawn-method registry (backends as records) and the dead-end stubs."""
from __future__ import annotations

import os
import pathlib
import re
from typing import get_args

import pytest
import trio

from tractor_subint.spawn import (
    ENV_VAR,
    Backend,
    SpawnMethodKey,
    SpawnRequest,
    available_start_methods,
    current_start_method,
    get_backend,
    register_backend,
    registered_backends,
    reset_start_method,
    selected_start_method,
    try_set_start_method,
    unregister_backend,
    unusable_reason,
)
from tractor_subint.spawn.backends.subint_fork import subint_fork_proc

REPO = pathlib.Path(__file__).resolve().parents[2]
REQUEST = SpawnRequest(name='probe', entry='tractor_subint:__version__', ipc_fd=0)


@pytest.fixture(autouse=True)
def _fresh_selection(monkeypatch):
    """Each test starts with nothing selected and no environment override."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    saved = selected_start_method()
    reset_start_method()
    yield
    monkeypatch.undo()  # os.fork and friends back before re-selecting
    if saved is None:
        reset_start_method()
    else:
        try_set_start_method(saved)


@pytest.fixture
def extra_backend():
    """A backend registered by 'someone else' for the test's duration."""
    spawned: list[SpawnRequest] = []

    async def fake_proc(request: SpawnRequest):
        spawned.append(request)
        return 'a handle'

    backend = register_backend(Backend('fake', 'a test double', fake_proc))
    yield backend, spawned
    unregister_backend('fake')


def test_builtin_records_are_the_spawn_method_keys():
    keys = tuple(backend.key for backend in registered_backends())
    assert keys == get_args(SpawnMethodKey) == (
        'trio', 'main_thread_forkserver', 'subint_forkserver', 'subint', 'subint_fork',
    )


def test_records_declare_what_each_backend_is():
    trio_, mtf, sfs, subint, subint_fork = (get_backend(k) for k in get_args(SpawnMethodKey))
    assert (trio_.forks, trio_.hosts_subinterpreter) == (False, False)
    assert (mtf.forks, mtf.hosts_subinterpreter) == (True, False)
    assert (sfs.forks, sfs.hosts_subinterpreter) == (True, True)
    assert subint.hosts_subinterpreter and not subint.forks
    assert {'fork', 'pidfd'} <= mtf.requires and 'subinterpreters' in sfs.requires
    assert [b.status for b in (trio_, mtf, sfs, subint, subint_fork)] == [
        'working', 'working', 'working', 'working', 'dead_end',
    ]
    # Its actors may run in isolated interpreters, where msgspec cannot load.
    assert [b.codec for b in (trio_, mtf, sfs, subint)] == ['msgpack', 'msgpack', 'msgpack', 'marshal']
    assert all(backend.description for backend in registered_backends())


@pytest.mark.parametrize('key', get_args(SpawnMethodKey))
def test_try_set_start_method_accepts_every_key(key):
    assert try_set_start_method(key) == key
    assert current_start_method() == key
    assert selected_start_method() == key


def test_unknown_key_names_the_registered_ones(extra_backend):
    with pytest.raises(ValueError) as err:
        try_set_start_method('mp_forkserver')
    assert "'mp_forkserver'" in str(err.value)
    for backend in registered_backends():
        assert backend.key in str(err.value)
    assert 'fake' in str(err.value)
    assert current_start_method() == 'trio'
    with pytest.raises(ValueError, match="unknown spawn method 'nope'"):
        get_backend('nope')


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
    assert 'needs subinterpreters' in unusable_reason('subint_forkserver')
    assert 'subint_forkserver' not in available_start_methods()
    assert try_set_start_method('trio') == 'trio'  # unaffected


def test_missing_fork_is_a_clear_error(monkeypatch):
    monkeypatch.delattr('os.fork')
    with pytest.raises(RuntimeError, match=r"'main_thread_forkserver' needs os\.fork\(\)"):
        try_set_start_method('main_thread_forkserver')
    assert available_start_methods() == ('trio', 'subint')  # no fork needed


def test_missing_pidfds_are_a_clear_error(monkeypatch):
    def no_pidfd(pid):
        raise OSError(38, 'Function not implemented')

    monkeypatch.setattr(os, 'pidfd_open', no_pidfd)
    with pytest.raises(RuntimeError, match=r"'main_thread_forkserver' needs pidfds"):
        try_set_start_method('main_thread_forkserver')


def test_working_backends_are_registered():
    assert available_start_methods() == ('trio', 'main_thread_forkserver', 'subint_forkserver', 'subint')
    for key in available_start_methods():
        backend = get_backend(key)
        assert unusable_reason(key) is None
        assert backend.spawn_fn == f'tractor_subint.spawn.backends.{key}:{key}_proc'
    assert 'ai/conc-anal/' in unusable_reason('subint_fork')
    assert 'unknown' in unusable_reason('mp_spawn')


def test_default_is_trio_then_env_then_explicit(monkeypatch):
    assert current_start_method() == 'trio'
    assert get_backend().key == 'trio'
    monkeypatch.setenv(ENV_VAR, 'subint_forkserver')
    assert current_start_method() == 'subint_forkserver'
    assert selected_start_method() is None
    try_set_start_method('main_thread_forkserver')
    assert current_start_method() == 'main_thread_forkserver'
    reset_start_method()
    assert current_start_method() == 'subint_forkserver'


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(ENV_VAR, 'fork_bomb')
    with pytest.raises(ValueError, match=r'\$TRACTOR_SUBINT_SPAWN_METHOD: unknown spawn method'):
        current_start_method()


def test_spawn_request_rejects_bad_input():
    with pytest.raises(ValueError, match='entry'):
        SpawnRequest(name='x', entry='no_colon', ipc_fd=0)
    with pytest.raises(ValueError, match='ipc_fd'):
        SpawnRequest(name='x', entry='a:b')


def test_a_registered_backend_is_selectable_and_spawns(extra_backend):
    backend, spawned = extra_backend
    assert get_backend('fake') is backend
    assert 'fake' in available_start_methods()
    assert try_set_start_method('fake') == 'fake'
    assert trio.run(get_backend().spawn, REQUEST) == 'a handle'
    assert spawned == [REQUEST]


def test_an_experimental_backend_spawns_when_named_but_is_not_listed(extra_backend):
    backend, spawned = extra_backend
    register_backend(Backend('fake', 'on trial', backend.spawn_fn, status='experimental'), replace=True)
    assert 'fake' not in available_start_methods()
    assert unusable_reason('fake') is None
    assert try_set_start_method('fake') == 'fake'
    assert trio.run(get_backend().spawn, REQUEST) == 'a handle'
    assert spawned == [REQUEST]


def test_registration_refuses_duplicates_and_keeps_builtins(extra_backend):
    backend, _ = extra_backend
    with pytest.raises(ValueError, match="'fake' is already registered"):
        register_backend(Backend('fake', 'again', None))
    replacement = Backend('fake', 'a replacement', None, status='reserved', reason='for later')
    assert register_backend(replacement, replace=True) is get_backend('fake')
    assert unusable_reason('fake') == "spawn method 'fake' is for later"
    with pytest.raises(ValueError, match='built-in'):
        unregister_backend('trio')


def test_a_records_requirements_gate_it(monkeypatch):
    register_backend(Backend('needs_fork', 'x', None, requires=frozenset({'fork'})))
    try:
        assert 'needs_fork' in available_start_methods()
        monkeypatch.delattr('os.fork')
        assert unusable_reason('needs_fork') == (
            "'needs_fork' needs os.fork(), which this platform (linux) lacks"
        )
    finally:
        unregister_backend('needs_fork')


def test_subint_fork_stub_explains_the_dead_end():
    with pytest.raises(NotImplementedError) as err:
        trio.run(get_backend('subint_fork').spawn, REQUEST)
    message = str(err.value)
    assert 'not main interpreter' in message
    assert "start_method='subint_forkserver'" in message
    doc = re.search(r'ai/conc-anal/\S+\.md', message)
    assert doc and (REPO / doc.group(0)).is_file(), f'{doc} does not exist'
    assert get_backend('subint_fork').spawn_fn == (
        f'{subint_fork_proc.__module__}:{subint_fork_proc.__name__}'
    )
