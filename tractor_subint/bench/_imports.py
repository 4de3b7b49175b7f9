"""``bench --imports``: what an actor's interpreter imports before it can
answer its first message, per kind of interpreter, and whose bill it is.

A spawn that needs a fresh interpreter pays its imports: trio, attrs,
msgspec and the runtime. Each kind is measured in a fresh process run with
``-X importtime``, importing either the actor's boot modules
(:data:`ACTOR_MODULES`, what every backend's child imports before it says
hello) or upstream's alone (:data:`UPSTREAM`), so that the difference is
ours:

- ``process``: a fresh ``python`` (the ``trio`` backend's child);
- ``legacy``: a legacy subinterpreter (a ``subint_forkserver`` child's
  actor, ``subint`` with ``interpreter='legacy'``);
- ``isolated``: an isolated subinterpreter (``subint``'s default; msgspec
  does not load there, its channels speak marshal).

``main_thread_forkserver`` children import nothing: they are forks of a
parent that has. Every import is attributed to a group by the module's name:
the interpreter's start-up (what a bare interpreter of the kind imports),
ours, upstream's packages, and the stdlib, which is upstream's where
upstream's packages alone import it, else ours.
:func:`first_message_modules` checks the premise: what a real actor of each
kind holds when it answers its first call, beyond its boot modules.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ('process', 'legacy', 'isolated')
ACTOR_MODULES = ('tractor_subint.spawn._child_host', 'tractor_subint.runtime._boot')
"""What a child imports before its actor says hello: the shell and the entry."""
UPSTREAM = {'process': ('trio', 'msgspec'), 'legacy': ('trio', 'msgspec'), 'isolated': ('trio',)}
"""Upstream's share of an actor of each kind: the runtime needs no more."""
UPSTREAM_PACKAGES = frozenset({
    'trio', 'outcome', 'sniffio', 'sortedcontainers', 'idna', 'attr', 'attrs', 'msgspec',
    'typing_extensions', 'exceptiongroup',
})
GROUPS = ('start-up', 'upstream', 'stdlib via upstream', 'ours', 'stdlib via ours', 'other')
_MARK = '--tractor-subint-imports--'

_SUBINT = '''
import _interpreters, sys
kind = sys.argv[1]
print({mark!r}, file=sys.stderr, flush=True)
interp = _interpreters.create(_interpreters.new_config(kind))
failure = _interpreters.exec(interp, {code!r})
_interpreters.destroy(interp)
if failure is not None:
    raise SystemExit(f'the import failed in a {{kind}} subinterpreter: {{failure}}')
'''


@dataclass(frozen=True)
class Import:
    """One line of ``-X importtime``."""

    name: str
    self_us: int


def parse_importtime(text: str) -> list[Import]:
    """The imports ``-X importtime`` printed in ``text`` after the mark
    (every line if there is none)."""
    lines = text.splitlines()
    if _MARK in lines:
        lines = lines[lines.index(_MARK) + 1:]
    imports = []
    for line in lines:
        parts = line.removeprefix('import time:').split('|')
        if not line.startswith('import time:') or len(parts) != 3 or 'imported package' in line:
            continue
        imports.append(Import(parts[2].strip(), int(parts[0])))
    return imports


def _top(name: str) -> str:
    return name.partition('.')[0]


def group_of(name: str, start_up: set[str], upstream: set[str]) -> str:
    """Which group's bill module ``name`` is (:data:`GROUPS`), given what
    a bare interpreter of the kind imports (``start_up``) and what
    upstream's packages import alone (``upstream``)."""
    top = _top(name)
    if name in start_up:
        return 'start-up'
    if top == 'tractor_subint':
        return 'ours'
    if top in UPSTREAM_PACKAGES:
        return 'upstream'
    if top in sys.stdlib_module_names or top.startswith('_') and not top.startswith('__editable__'):
        return 'stdlib via upstream' if name in upstream else 'stdlib via ours'
    return 'other'


def _command(kind: str, modules: Sequence[str]) -> list[str]:
    code = ''.join(f'import {name}\n' for name in modules) or 'pass\n'
    if kind == 'process':
        script = f'import sys\nprint({_MARK!r}, file=sys.stderr, flush=True)\n{code}'
        return [sys.executable, '-X', 'importtime', '-c', script]
    return [sys.executable, '-X', 'importtime', '-c', _SUBINT.format(mark=_MARK, code=code), kind]


def import_once(kind: str, modules: Sequence[str]) -> list[Import]:
    """Import ``modules`` in a fresh interpreter of ``kind`` (in a fresh
    process, this process's bytecode settings), with ``-X importtime``."""
    done = subprocess.run(_command(kind, modules), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        asked = ', '.join(modules) or 'nothing'
        raise RuntimeError(f'importing {asked} in a {kind} interpreter failed:\n{done.stderr[-2000:]}')
    return parse_importtime(done.stderr)


@dataclass
class KindImports:
    """One kind of interpreter: milliseconds per group, one value per repeat."""

    kind: str
    actor_ms: dict[str, list[float]] = field(default_factory=dict)
    """The actor's boot modules, by group (:data:`GROUPS`)."""
    upstream_ms: list[float] = field(default_factory=list)
    """Upstream's alone (:data:`UPSTREAM`), start-up excluded."""
    ours: dict[str, list[float]] = field(default_factory=dict)
    """Our modules' self time, by module."""
    stdlib_via_ours: dict[str, list[float]] = field(default_factory=dict)
    """Stdlib modules that upstream alone does not import, by module."""
    modules: int = 0
    """How many modules the actor's boot imports (start-up excluded; last repeat)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KindImports:
        return cls(**data)


def _add(table: dict[str, list[float]], key: str, value: float) -> None:
    table.setdefault(key, []).append(value)


def measure_kind(kind: str) -> KindImports:
    """One repeat for ``kind``: a bare interpreter, upstream's alone, the
    actor's boot modules (three fresh processes)."""
    result = KindImports(kind)
    start_up = {imp.name for imp in import_once(kind, ())}
    alone = import_once(kind, UPSTREAM[kind])
    upstream = {imp.name for imp in alone}
    result.upstream_ms.append(sum(imp.self_us for imp in alone if imp.name not in start_up) / 1000)
    imports = import_once(kind, ACTOR_MODULES)
    totals = dict.fromkeys(GROUPS, 0.0)
    for imp in imports:
        group = group_of(imp.name, start_up, upstream)
        totals[group] += imp.self_us / 1000
        if group == 'ours':
            _add(result.ours, imp.name, imp.self_us / 1000)
        elif group == 'stdlib via ours':
            _add(result.stdlib_via_ours, imp.name, imp.self_us / 1000)
    for group, ms in totals.items():
        _add(result.actor_ms, group, ms)
    result.modules = sum(1 for imp in imports if imp.name not in start_up)
    return result


def measure_imports(repeats: int = 5, kinds: Iterable[str] = KINDS) -> list[KindImports]:
    """Every kind, ``repeats`` times each (interleaved: a noisy moment hits
    every kind alike)."""
    results = {kind: KindImports(kind) for kind in kinds}
    for _ in range(repeats):
        for kind, result in results.items():
            one = measure_kind(kind)
            for group, values in one.actor_ms.items():
                result.actor_ms.setdefault(group, []).extend(values)
            result.upstream_ms.extend(one.upstream_ms)
            for name, values in one.ours.items():
                result.ours.setdefault(name, []).extend(values)
            for name, values in one.stdlib_via_ours.items():
                result.stdlib_via_ours.setdefault(name, []).extend(values)
            result.modules = one.modules
    return list(results.values())


def _cell(values: Sequence[float]) -> str:
    if not values:
        return '–'
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})'


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def render_imports(results: Sequence[KindImports], top: int = 8) -> str:
    """The table (ms per group, median and range of the repeats) and, per
    kind, our costliest modules and the stdlib only we pull in."""
    lines = [
        '| interpreter | modules | start-up | upstream | stdlib via upstream | ours | stdlib via ours '
        '| boot total | upstream alone | ours / boot total |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        boot = [
            sum(r.actor_ms[g][i] for g in GROUPS if g != 'start-up')
            for i in range(len(r.actor_ms.get('ours', [])))
        ]
        ours_ms, via_ours_ms = r.actor_ms.get('ours', []), r.actor_ms.get('stdlib via ours', [])
        ours = [a + b for a, b in zip(ours_ms, via_ours_ms, strict=True)]
        share = _median(ours) / _median(boot) if boot and _median(boot) else 0.0
        lines.append(
            f'| {r.kind} | {r.modules} | {_cell(r.actor_ms.get("start-up", []))} '
            f'| {_cell(r.actor_ms.get("upstream", []))} | {_cell(r.actor_ms.get("stdlib via upstream", []))} '
            f'| {_cell(r.actor_ms.get("ours", []))} | {_cell(r.actor_ms.get("stdlib via ours", []))} '
            f'| {_cell(boot)} | {_cell(r.upstream_ms)} | {share:.0%} |'
        )
    for r in results:
        costly = sorted(r.ours.items(), key=lambda kv: -_median(kv[1]))[:top]
        lines.append(
            f'\n{r.kind}: our costliest modules (self ms, median): '
            + ', '.join(f'{name.removeprefix("tractor_subint.")} {_median(v):.1f}' for name, v in costly)
        )
        if r.stdlib_via_ours:
            via = sorted(r.stdlib_via_ours.items(), key=lambda kv: -_median(kv[1]))
            lines.append(
                f'{r.kind}: stdlib only we import: '
                + ', '.join(f'{name} {_median(v):.1f}' for name, v in via)
            )
    return '\n'.join(lines)


IMPORTS_LEGEND = (
    'Imports (-X importtime, ms of import time, median (min–max) of the repeats; each in a fresh\n'
    'process, with this run\'s bytecode setting): "boot total" is what an actor\'s interpreter\n'
    f'imports before its first message ({", ".join(ACTOR_MODULES)}), "upstream alone" the same\n'
    'interpreter importing only trio (and msgspec where it loads), "start-up" what any fresh\n'
    'interpreter of the kind imports first (site, codecs, an editable install\'s finder). A stdlib\n'
    'module is ours where upstream alone does not import it. main_thread_forkserver children import\n'
    'nothing. "extra at first message": what a real actor holds when it answers its first call\n'
    'beyond its boot modules (its enabled modules are expected there).'
)


FIRST_MESSAGE_CASES = (('trio', ''), ('subint_forkserver', ''), ('subint', 'isolated'), ('subint', 'legacy'))


def render_run_imports(imports: dict[str, Any]) -> str:
    """``--imports``' part of a run (as the JSON keeps it)."""
    text = render_imports([KindImports.from_json(kind) for kind in imports.get('kinds', [])])
    extra = imports.get('first_message') or {}
    if extra:
        text += '\n\nextra at first message (beyond the boot modules): ' + '; '.join(
            f'{name}: {", ".join(mods) or "none"}' for name, mods in extra.items()
        )
    return text


def first_message_modules(env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """What real actors hold when they answer their first call beyond what
    their boot modules import, per backend configuration (a fresh process
    per configuration; the pools off): an import between the boot and the
    first message would show here."""
    script = (
        'import json, sys, trio\n'
        'from tractor_subint.bench._imports import _spawned_modules\n'
        'print(json.dumps(trio.run(_spawned_modules, sys.argv[1], sys.argv[2] or None)))\n'
    )
    out: dict[str, list[str]] = {}
    for key, interpreter in FIRST_MESSAGE_CASES:
        done = subprocess.run(
            [sys.executable, '-c', script, key, interpreter], capture_output=True, text=True, timeout=120,
            env=env if env is not None else dict(os.environ),
        )
        name = f'{key} ({interpreter})' if interpreter else key
        if done.returncode != 0:
            out[name] = [f'failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}']
            continue
        out[name] = list(json.loads(done.stdout.splitlines()[-1]))
    return out


async def _spawned_modules(key: str, interpreter: str | None) -> list[str]:
    from ..runtime import open_nursery
    from .targets import loaded_modules

    kind = 'process' if key == 'trio' else (interpreter or 'legacy')
    async with open_nursery(start_method=key, warm_pool=0) as an:
        portal = await an.start_actor(
            'imports', enable_modules=['tractor_subint.bench.targets'], interpreter=interpreter,
        )
        loaded = await portal.run(loaded_modules)
        await portal.cancel_actor()
    return sorted(set(loaded) - set(booted_modules(kind)))


_LIST_MODULES = 'import json, sys\nprint(json.dumps(sorted(sys.modules)), flush=True)\n'


def booted_modules(kind: str) -> list[str]:
    """``sys.modules`` of a fresh interpreter of ``kind`` once it imported
    :data:`ACTOR_MODULES`."""
    code = ''.join(f'import {name}\n' for name in ACTOR_MODULES) + _LIST_MODULES
    if kind == 'process':
        command = [sys.executable, '-c', code]
    else:
        command = [sys.executable, '-c', _SUBINT.format(mark='', code=code), kind]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    modules: list[str] = json.loads(done.stdout.splitlines()[-1])
    return modules
