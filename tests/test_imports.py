"""Import hygiene: declared public surfaces, and processes that load only
what they run (the forkserver, a child's entry, an isolated subinterpreter)."""
from __future__ import annotations

import _interpreters
import ast
import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tractor_subint

FACADES = [
    'tractor_subint', 'tractor_subint.runtime', 'tractor_subint.spawn',
    'tractor_subint.spawn.forkserver', 'tractor_subint.spawn.pool',
]
PACKAGE_DIR = Path(tractor_subint.__file__).parent


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


def test_a_submodule_not_yet_imported_is_an_attribute_of_its_package():
    """``tractor.runtime._supervise.ActorNursery`` (an annotation in one of
    tractor's examples) works as if the package had imported it; a name that
    is neither declared nor a submodule is still an AttributeError."""
    shown = _run_fresh('''
        import json, sys
        import tractor_subint
        assert 'tractor_subint.runtime._supervise' not in sys.modules
        nursery = tractor_subint.runtime._supervise.ActorNursery
        try:
            tractor_subint.runtime._no_such_module
        except AttributeError as error:
            missing = str(error)
        print(json.dumps({'same': [nursery is tractor_subint.ActorNursery], 'missing': [missing]}))
    ''')
    assert shown['same'] == [True]
    assert shown['missing'] == ["module 'tractor_subint.runtime' has no attribute '_no_such_module'"]


def _run_fresh(code: str) -> dict[str, list[str]]:
    """The JSON object printed last by ``code``, run in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return result


def _module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE_DIR.rglob('*.py'):
        parts = ['tractor_subint', *path.relative_to(PACKAGE_DIR).with_suffix('').parts]
        if parts[-1] == '__init__':
            parts.pop()
        files['.'.join(parts)] = path
    return files


def _import_edges(name: str, source: str, known: set[str], *, is_package: bool = False) -> set[str]:
    """Every module of ``known`` that module ``name`` (its ``source``)
    imports: at module level, inside functions (lazy) and under
    ``TYPE_CHECKING`` alike, plus what a lazy facade (``lazy_module``)
    resolves its names from."""
    package = name if is_package else name.rpartition('.')[0]

    def absolute(level: int, module: str | None) -> str:
        base = package
        for _ in range(level - 1):
            base = base.rpartition('.')[0]
        return f'{base}.{module}' if module else base

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = absolute(node.level, node.module) if node.level else node.module
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                found.add(f'{target}.{alias.name}' if f'{target}.{alias.name}' in known else target)
        elif isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'lazy_module':
            exports = node.args[1]
            assert isinstance(exports, ast.Dict)
            found.update(absolute(1, key.value.lstrip('.')) for key in exports.keys)
    return {module for module in found if module in known and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_no_import_cycle_among_spawn_modules():
    files = _module_files()
    spawn = {name for name in files if name.startswith('tractor_subint.spawn')}
    graph = {
        name: _import_edges(
            name, files[name].read_text(), spawn, is_package=files[name].name == '__init__.py',
        )
        for name in spawn
    }
    assert graph['tractor_subint.spawn.forkserver._server']  # the walk sees imports at all
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_lazy_and_type_checking_imports():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _cycles(graph) == [['a', 'b', 'c']]
    source = textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .b import B
        def f():
            from . import c
        __getattr__, __dir__ = lazy_module(__name__, {'.d': ('x',)})
    """)
    known = {'tractor_subint.spawn.b', 'tractor_subint.spawn.c', 'tractor_subint.spawn.d'}
    assert _import_edges('tractor_subint.spawn.probe', source, known) == known


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
    assert 'logging' not in loaded  # nothing there logs; the import costs every start
    ours = [m for m in loaded if m.startswith('tractor_subint')]
    assert not [m for m in ours if '.backends' in m or '.runtime' in m], ours
    sides = {
        'tractor_subint.spawn.forkserver._client', 'tractor_subint.spawn.forkserver._owner',
        'tractor_subint.spawn.pool._claim',
    }
    assert not sides & set(ours)


def test_opening_a_tree_loads_no_server_pool_or_fork_module():
    # A root opens its tree before any spawn: it binds an address and starts
    # a watcher thread, nothing more (the server may never be needed).
    loaded = _modules_after(
        'import tractor_subint.spawn as s\n'
        'tree = s.open_tree()\n'
        'tree.close()\n'
    )
    ours = {m for m in loaded if m.startswith('tractor_subint')}
    unwanted = {
        'tractor_subint.spawn.forkserver._server', 'tractor_subint.spawn.forkserver._client',
        'tractor_subint.spawn._fork', 'tractor_subint.spawn._child_host',
        'tractor_subint.spawn.pool._owner', 'tractor_subint.spawn.pool._member',
        'tractor_subint.spawn.pool._claim', 'tractor_subint.spawn._subint_host',
    }
    assert not unwanted & ours, sorted(unwanted & ours)
    assert 'tractor_subint.spawn.forkserver._owner' in ours
    assert 'trio' not in loaded


def test_a_child_entry_loads_no_backend_and_no_forkserver():
    # What a child imports to run the runtime's entry (see _child_host).
    loaded = _modules_after('import tractor_subint.spawn._child_host, tractor_subint.runtime._boot')
    ours = [m for m in loaded if m.startswith('tractor_subint')]
    assert not [m for m in ours if '.backends' in m or '.forkserver' in m], ours
    # Debug mode's REPL (pdb, bdb, cmd, readline...) loads where one opens.
    assert not {'pdb', 'bdb', 'readline', 'tractor_subint.runtime._repl'} & set(loaded)


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

            class Seen:  # every import asked for, whether it loads or not
                names = []

                @classmethod
                def find_spec(cls, name, path=None, target=None):
                    cls.names.append(name)

            sys.meta_path.insert(0, Seen)
            import tractor_subint, tractor_subint.runtime._boot
            # Not even tried: msgspec's Python half costs ~20 ms before it is refused.
            assert not [name for name in Seen.names if name.startswith('msgspec')], Seen.names
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
