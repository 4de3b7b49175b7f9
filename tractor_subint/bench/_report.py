"""A benchmark run as data: every sample, the conditions, and what is made
of them: the Markdown tables, the JSON file (``--json``), a comparison with
an earlier run (``--compare``) and a plot (``--plot``).

The JSON schema is documented in ``bench/README.md``; :data:`SCHEMA` names
its version. A reader must accept keys it does not know (a later version may
add some); a key's meaning never changes within one schema version.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = 'tractor_subint.bench/1'

REFERENCES = ('floor: bare fork', 'fork + trio.run', 'floor: fork + trio + socket')
"""Items every run has, that ratios are taken to."""
PATTERN_BASE = 'trio'
"""The row that the usage patterns' ratios are taken to."""
PATTERNS = (
    'fresh_first', 'burst8_first', 'burst8_second', 'burst32_first', 'burst32_second', 'program',
    'par128_answered',
)
"""The usage patterns' time columns, in the patterns table's order."""


@dataclass(frozen=True)
class Stats:
    """The spread of one cell's samples."""

    n: int
    min: float
    q1: float
    median: float
    q3: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if len(values) >= 2:
            q1, _, q3 = statistics.quantiles(values, n=4, method='inclusive')
        else:
            q1 = q3 = values[0]
        return cls(len(values), min(values), q1, statistics.median(values), q3, max(values))


@dataclass
class ItemResults:
    """Every sample of one item (a backend, or a reference), by column."""

    name: str
    backend: str | None = None
    """The spawn method's key; None for the references."""
    warm_pool: int | None = None
    interpreter: str | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, column: str, value: float | list[float] | None) -> None:
        if value is None:
            return
        values = value if isinstance(value, list) else [value]
        if values:
            self.samples.setdefault(column, []).extend(float(v) for v in values)

    def stats(self, column: str) -> Stats | None:
        values = self.samples.get(column)
        return Stats.of(values) if values else None

    def median(self, column: str) -> float | None:
        stats = self.stats(column)
        return None if stats is None else stats.median


@dataclass
class BenchRun:
    """One run: what was measured, under which conditions, and every sample."""

    started: str
    """ISO 8601, UTC."""
    duration_s: float
    argv: list[str]
    environment: dict[str, Any]
    versions: dict[str, str | None]
    settings: dict[str, Any]
    columns: dict[str, dict[str, str]]
    """Column name -> ``{'unit': ..., 'doc': ...}``, in table order."""
    items: list[ItemResults]
    transport: list[dict[str, Any]] | None = None
    imports: dict[str, Any] | None = None
    """``--imports``: ``kinds`` (per kind of interpreter, ms by group) and
    ``first_message`` (what real actors held at their first call beyond
    their boot modules)."""

    def item(self, name: str) -> ItemResults | None:
        return next((item for item in self.items if item.name == name), None)

    def to_json(self) -> dict[str, Any]:
        items = []
        for item in self.items:
            summary = {c: asdict(s) for c in self.columns if (s := item.stats(c)) is not None}
            items.append({**asdict(item), 'summary': summary})
        return {
            'schema': SCHEMA,
            'started': self.started,
            'duration_s': round(self.duration_s, 3),
            'argv': self.argv,
            'environment': self.environment,
            'versions': self.versions,
            'settings': self.settings,
            'columns': self.columns,
            'items': items,
            'transport': self.transport,
            'imports': self.imports,
        }

    def write(self, path: str) -> None:
        with open(path, 'w') as f:
            json.dump(self.to_json(), f, indent=1)
            f.write('\n')

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRun:
        """Read :meth:`to_json`'s output; :class:`ValueError` if it is not one."""
        if not isinstance(data, dict) or data.get('schema') != SCHEMA:
            found = data.get('schema') if isinstance(data, dict) else type(data).__name__
            raise ValueError(f'not a tractor_subint bench result of schema {SCHEMA!r} (found {found!r})')
        try:
            items = [
                ItemResults(
                    name=str(item['name']), backend=item.get('backend'), warm_pool=item.get('warm_pool'),
                    interpreter=item.get('interpreter'),
                    samples={str(c): [float(v) for v in vs] for c, vs in item['samples'].items()},
                )
                for item in data['items']
            ]
            return cls(
                started=str(data['started']), duration_s=float(data['duration_s']),
                argv=list(data['argv']), environment=dict(data['environment']),
                versions=dict(data['versions']), settings=dict(data['settings']),
                columns={str(c): dict(v) for c, v in data['columns'].items()},
                items=items, transport=data.get('transport'), imports=data.get('imports'),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f'a malformed bench result: {type(exc).__name__}: {exc}') from None

    @classmethod
    def read(cls, path: str) -> BenchRun:
        """:meth:`from_json` of the file ``path``; :class:`ValueError` names
        the file if it cannot be read as one."""
        try:
            with open(path) as f:
                data = json.load(f)
            return cls.from_json(data)
        except (OSError, ValueError) as exc:
            raise ValueError(f'{path}: {exc}') from None


# -- Markdown -------------------------------------------------------------------


def _num(value: float | None, digits: int = 1) -> str:
    return '–' if value is None else f'{value:.{digits}f}'


def _cell(stats: Stats | None) -> str:
    if stats is None:
        return '–'
    if stats.n == 1:
        return _num(stats.median)
    return f'{_num(stats.median)} ({_num(stats.min)}–{_num(stats.max)})'


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return '–'
    return f'{value / base:.2f}x' if value / base < 10 else f'{value / base:.0f}x'


def _counts(run: BenchRun, column: str) -> str:
    counts = sorted({len(item.samples[column]) for item in run.items if column in item.samples})
    if not counts:
        return '0'
    return str(counts[0]) if len(counts) == 1 else f'{counts[0]}-{counts[-1]}'


def render_tables(run: BenchRun) -> str:
    """The samples table (median and range per cell, the sample count per
    column) and the ratios table (medians of this run to its references)."""
    columns = list(run.columns)
    lines = [
        '| item | ' + ' | '.join(columns) + ' |',
        '|---|' + '---|' * len(columns),
    ]
    for item in run.items:
        lines.append(f'| {item.name} | ' + ' | '.join(_cell(item.stats(c)) for c in columns) + ' |')
    lines.append('| (samples per cell) | ' + ' | '.join(_counts(run, c) for c in columns) + ' |')

    def first_of(name: str) -> float | None:
        item = run.item(name)
        return None if item is None else item.median('first')

    bases = [
        ('floor', first_of(REFERENCES[0])), ('fork+trio', first_of(REFERENCES[1])),
        ('socket floor', first_of(REFERENCES[2])), ('trio', first_of('trio')),
        ('main_thread_forkserver', first_of('main_thread_forkserver')),
    ]
    lines += [
        '',
        '| item | ' + ' | '.join(f'first / {label}' for label, _ in bases)
        + ' | cpu2 / cpu1 | ctx_us / rtt_us | stream_rtt_us / rtt_us | rtt_us / socket floor\'s |',
        '|---|' + '---|' * (len(bases) + 4),
    ]
    raw = run.item(REFERENCES[2])
    raw_rtt = None if raw is None else raw.median('rtt_us')
    for item in run.items:
        first = item.median('first')
        ratios = [_ratio(first, base) for _, base in bases]
        ratios.append(_ratio(item.median('cpu2'), item.median('cpu1')))
        ratios.append(_ratio(item.median('ctx_us'), item.median('rtt_us')))
        ratios.append(_ratio(item.median('stream_rtt_us'), item.median('rtt_us')))
        ratios.append(_spread_ratio(item.stats('rtt_us'), raw_rtt))
        lines.append(f'| {item.name} | ' + ' | '.join(ratios) + ' |')
    patterns = render_patterns(run)
    return '\n'.join(lines) + ('\n\n' + patterns if patterns else '')


def _spread_ratio(stats: Stats | None, base: float | None) -> str:
    """``stats`` over ``base``: the median's ratio, and the samples' range
    over the same base."""
    if stats is None or not base:
        return '–'
    if stats.n == 1:
        return _ratio(stats.median, base)
    return f'{_ratio(stats.median, base)} ({stats.min / base:.2f}–{stats.max / base:.2f})'


def render_patterns(run: BenchRun) -> str:
    """Each usage pattern's time over the same pattern's median under
    :data:`PATTERN_BASE`, in this run (empty when the run has no pattern
    columns or no such row)."""
    columns = [c for c in PATTERNS if c in run.columns]
    base = run.item(PATTERN_BASE)
    if not columns or base is None:
        return ''
    lines = [
        '| item | ' + ' | '.join(f'{c} / {PATTERN_BASE}' for c in columns) + ' |',
        '|---|' + '---|' * len(columns),
    ]
    for item in run.items:
        if item.backend is None:
            continue
        cells = [_spread_ratio(item.stats(c), base.median(c)) for c in columns]
        lines.append(f'| {item.name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def render_legend(run: BenchRun) -> str:
    lines = [
        'Cells: median (min–max) of the samples, in each column\'s unit; the last row counts',
        'them. Ratios: medians of this run. "pool hit" and "pool" samples start with the pool',
        'full; "cold" ones and the other subint rows have it off. In-process interpreters are',
        'released before every other sample: a process that holds one cannot fork.',
        f'Patterns table: each usage pattern\'s median over {PATTERN_BASE}\'s median of the same',
        'pattern, and (in brackets) the item\'s fastest and slowest sample over that same median.',
        'Bursts close every pool of this process first: a program\'s first burst meets none.',
    ]
    lines += [f'  {name} ({meta["unit"]}): {meta["doc"]}' for name, meta in run.columns.items()]
    return '\n'.join(lines)


# -- comparing two runs -----------------------------------------------------------


CONDITIONS = ('python', 'implementation', 'bytecode', 'cpus', 'platform')


def _overlap(a: Stats, b: Stats) -> bool:
    return a.min <= b.max and b.min <= a.max


def render_comparison(new: BenchRun, old: BenchRun, old_name: str) -> str:
    """Per cell, this run's median over the old run's, for the items and
    columns both have; ``*`` marks a cell whose samples do not overlap the
    old ones' (a change larger than either run's spread; only where both
    runs have two samples or more)."""
    columns = [c for c in new.columns if c in old.columns]
    lines = [
        f'Compared with {old_name} (started {old.started}): new median / old median; '
        f'* where the two runs\' samples (2 or more each) do not overlap.',
    ]
    for key in CONDITIONS:
        mine, theirs = new.environment.get(key), old.environment.get(key)
        if mine != theirs:
            lines.append(f'  note: {key} differs: {theirs} then, {mine} now')
    for key in sorted(set(new.versions) | set(old.versions)):
        if new.versions.get(key) != old.versions.get(key):
            lines.append(f'  note: {key} {old.versions.get(key)} then, {new.versions.get(key)} now')
    lines += [
        '',
        '| item | ' + ' | '.join(columns) + ' |',
        '|---|' + '---|' * len(columns),
    ]
    for item in new.items:
        before = old.item(item.name)
        if before is None:
            continue
        cells = []
        for column in columns:
            now, then = item.stats(column), before.stats(column)
            if now is None or then is None:
                cells.append('–')
                continue
            # One sample has no spread: whether it "overlaps" says nothing.
            mark = ' *' if min(now.n, then.n) >= 2 and not _overlap(now, then) else ''
            cells.append(_ratio(now.median, then.median) + mark)
        lines.append(f'| {item.name} | ' + ' | '.join(cells) + ' |')
    only_new = _names(new.items) - _names(old.items)
    only_old = _names(old.items) - _names(new.items)
    if only_new:
        lines.append(f'\nonly in this run: {", ".join(sorted(only_new))}')
    if only_old:
        lines.append(f'\nonly in {old_name}: {", ".join(sorted(only_old))}')
    return '\n'.join(lines)


def _names(items: Iterable[ItemResults]) -> set[str]:
    return {item.name for item in items}


# -- plot ------------------------------------------------------------------------


PLOT_EXTRA = "pip install 'tractor_subint[plot]' (matplotlib)"


def plot_unavailable() -> str | None:
    """Why ``--plot`` cannot draw here (None: it can)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f'--plot needs matplotlib, which does not import here ({exc}): {PLOT_EXTRA}'
    return None


def plot(run: BenchRun, path: str, column: str = 'first') -> None:
    """Draw ``column`` per item (a box of its samples, each sample a dot,
    log scale) into ``path`` (its suffix picks the format: .png, .svg, .pdf)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator

    items = [item for item in run.items if item.samples.get(column)]
    if not items:
        raise ValueError(f'no item has samples of {column!r} to plot')
    unit = run.columns.get(column, {}).get('unit', '')
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(items) + 1.8))
    data = [item.samples[column] for item in items]
    ax.boxplot(data, vert=False, widths=0.6, showfliers=False)
    for row, values in enumerate(data, start=1):
        ax.plot(values, [row] * len(values), 'o', alpha=0.5, markersize=3, color='tab:blue')
    ax.set_yticks(range(1, len(items) + 1), [item.name for item in items])
    ax.invert_yaxis()
    ax.set_xscale('log')
    plain = FuncFormatter(lambda value, _pos: f'{value:g}')
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel(f'{column} ({unit}), log scale: box = quartiles, line = median, dots = samples')
    env = run.environment
    ax.set_title(
        f'tractor_subint bench, {column} per item\n'
        f'Python {env.get("python")}, bytecode {str(env.get("bytecode", "?")).split(" ")[0]}, '
        f'{env.get("cpus")} CPUs, {run.started[:16]}',
        fontsize=9,
    )
    ax.grid(axis='x', which='both', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
