"""Import hygiene: declared public surfaces, and processes that load only
what they run (the forkserver, a child's entry, an isolated subinterpreter)."""
from __future__ import annotations

import _interpreters
import importlib
import json
import subprocess
import sys
import textwrap

import pytest

FACADES = [
    'tractor_subint', 'tractor_subint.runtime', 'tractor_subint.spawn',
    'tractor_subint.spawn.forkserver',
]


@pytest.mark.parametrize('name', FACADES)
def test_every_declared_name_resolves(name):
    module = importlib.import_module(name)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, f'{name}.{attr}'
    with pytest.raises(AttributeError, match='has no attribute'):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize('name', FACADES)
def test_dir_lists_every_declared_name_without_importing_it(name):
    shown = _run_fresh(f'''
        import importlib, json, sys
        module = importlib.import_module({name!r})
        before = set(sys.modules)
        print(json.dumps({{'dir': dir(module), 'loaded': sorted(set(sys.modules) - before)}}))
    ''')
    declared = importlib.import_module(name).__all__
    assert set(declared) <= set(shown['dir'])
    assert shown['dir'] == sorted(shown['dir'])
    assert shown['loaded'] == []


def _run_fresh(code: str) -> dict[str, list[str]]:
    """The JSON object printed last by ``code``, run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return result


def _modules_after(code: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = textwrap.dedent(code) + '\nimport json, sys; print(json.dumps(sorted(sys.modules)))'
    out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_the_forkserver_process_loads_neither_trio_nor_any_backend():
    # What `python -m tractor_subint.spawn.forkserver` imports before serving.
    loaded = _modules_after('import tractor_subint.spawn.forkserver.__main__')
    assert 'trio' not in loaded
    assert 'subprocess' not in loaded
    ours = [m for m in loaded if m.startswith('tractor_subint')]
    assert not [m for m in ours if '.backends' in m or '.runtime' in m], ours
    sides = {'tractor_subint.spawn.forkserver._client', 'tractor_subint.spawn.forkserver._owner'}
    assert not sides & set(ours)


def test_a_child_entry_loads_no_backend_and_no_forkserver():
    # What a child imports to run the runtime's entry (see _child_host).
    loaded = _modules_after('import tractor_subint.spawn._child_host, tractor_subint.runtime._boot')
    ours = [m for m in loaded if m.startswith('tractor_subint')]
    assert not [m for m in ours if '.backends' in m or '.forkserver' in m], ours


def test_the_boot_spec_reads_without_msgspec_in_an_isolated_subinterpreter():
    from tractor_subint.runtime._bootspec import BootSpec

    spec = BootSpec('a', ('a', 'f' * 32), ['m'], 'trio', sys.path, codec='msgpack')
    interp = _interpreters.create('isolated')
    try:
        _interpreters.set___main___attrs(interp, {'payload': spec.to_bytes(), 'path': tuple(sys.path)})
        failure = _interpreters.exec(interp, textwrap.dedent('''
            import sys
            sys.path[:] = path
            try:
                import msgspec
            except ImportError:
                pass
            else:
                raise AssertionError('msgspec loaded here: the check proves nothing')
            from tractor_subint.runtime._bootspec import BootSpec
            spec = BootSpec.from_bytes(payload)
            assert (spec.name, spec.codec) == ('a', 'msgpack'), spec
            assert 'msgspec' not in sys.modules
        '''))
    finally:
        _interpreters.destroy(interp)
    assert failure is None, getattr(failure, 'formatted', failure)


def test_the_runtime_loads_and_speaks_marshal_in_an_isolated_subinterpreter():
    # The first piece of an isolated-subinterpreter actor: msgspec refuses to
    # load there, so the runtime must not need it unless its codec does.
    from tractor_subint.runtime._codec import get_codec
    from tractor_subint.runtime._msgs import Call

    call = get_codec('marshal').encode(Call(3, 'mod', 'fn', {'x': [1, 'y']}))
    interp = _interpreters.create('isolated')
    try:
        _interpreters.set___main___attrs(interp, {'frame': call, 'path': tuple(sys.path)})
        failure = _interpreters.exec(interp, textwrap.dedent('''
            import sys
            sys.path[:] = path
            import tractor_subint, tractor_subint.runtime._boot
            from tractor_subint.runtime._codec import get_codec
            from tractor_subint.runtime._msgs import Call, Return
            codec = get_codec('marshal')
            msg = codec.decode(frame)
            assert msg == Call(3, 'mod', 'fn', {'x': [1, 'y']}), msg
            assert codec.decode(codec.encode(Return(3, msg.kwargs))) == Return(3, {'x': [1, 'y']})
            assert 'msgspec' not in sys.modules
        '''))
    finally:
        _interpreters.destroy(interp)
    assert failure is None, getattr(failure, 'formatted', failure)
