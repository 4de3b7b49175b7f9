"""What an installed package must carry besides its modules."""
from __future__ import annotations

import email
import email.message
import pathlib
import platform
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

import tractor_subint
from tractor_subint.spawn import _docs

PACKAGE = pathlib.Path(tractor_subint.__file__).resolve().parent
SOURCE_TREE = PACKAGE.parent / 'ai' / 'conc-anal'


def test_every_analysis_an_error_cites_is_a_file_here():
    for cited in (_docs.FORK_IN_SUBINT_DOC, _docs.FORK_WITH_LIVE_SUBINT_DOC):
        path = pathlib.Path(cited)
        assert path.is_absolute() and path.is_file(), cited
        assert path.read_text().startswith('# ')


def test_an_installed_package_carries_the_analyses():
    # In a source checkout (editable install) the documents are the tree's;
    # a built package must have them all as package data.
    shipped = PACKAGE / '_analysis'
    if SOURCE_TREE.is_dir() and not shipped.exists():
        assert pathlib.Path(_docs.FORK_IN_SUBINT_DOC).parent == SOURCE_TREE
        return
    names = {doc.name for doc in shipped.glob('*.md')}
    assert {'subint_fork_blocked_by_cpython_post_fork.md', 'fork_with_live_subinterpreter.md'} <= names
    assert pathlib.Path(_docs.FORK_IN_SUBINT_DOC).parent == shipped


SOURCE_ROOT = PACKAGE.parent

building_a_wheel = pytest.mark.skipon_spawn_backend(
    'main_thread_forkserver', 'subint_forkserver', 'subint',
    reason='building a wheel spawns nothing: once per CI Python is enough',
)


def _source_files() -> list[str]:
    """The files a fresh clone has (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
        cwd=SOURCE_ROOT, capture_output=True, check=True,
    ).stdout.decode().split('\0')
    return [name for name in listed if name and (SOURCE_ROOT / name).is_file()]


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """The wheel ``pip wheel`` builds from a copy of this checkout's files
    (so that no build/ or egg-info lands in the checkout)."""
    if not (SOURCE_ROOT / 'pyproject.toml').is_file() or not (SOURCE_ROOT / '.git').exists():
        pytest.skip('an installed package: there is no source tree to build a wheel from')
    tmp = tmp_path_factory.mktemp('wheel')
    source = tmp / 'source'
    for name in _source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SOURCE_ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--quiet', '--disable-pip-version-check',
         '--wheel-dir', str(tmp / 'dist'), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (path,) = (tmp / 'dist').glob('tractor_subint-*.whl')
    return zipfile.ZipFile(path)


def _metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    name = next(n for n in wheel.namelist() if n.endswith('.dist-info/METADATA'))
    return email.message_from_bytes(wheel.read(name))


@building_a_wheel
def test_the_wheel_is_typed(wheel):
    # PEP 561: without the marker, a user's mypy skips the package as untyped.
    assert 'tractor_subint/py.typed' in wheel.namelist()


@building_a_wheel
def test_the_wheel_states_version_license_and_classifiers(wheel):
    meta = _metadata(wheel)
    assert meta['Version'] == tractor_subint.__version__
    assert meta['License-Expression'] == 'MIT'
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in wheel.namelist())
    classifiers = set(meta.get_all('Classifier'))
    assert {'Typing :: Typed', 'Framework :: Trio', 'Programming Language :: Python :: 3.13'} <= classifiers
    assert meta['Requires-Python'] == '>=3.13'
    assert meta.get_all('Project-URL') and meta['Author']


@building_a_wheel
def test_the_wheel_carries_the_analyses_and_the_upstream_hook(wheel):
    names = set(wheel.namelist())
    assert 'tractor_subint_upstream.pth' in names
    assert 'tractor_subint/_analysis/subint_fork_blocked_by_cpython_post_fork.md' in names


def test_the_version_is_written_once():
    pyproject = (SOURCE_ROOT / 'pyproject.toml')
    if not pyproject.is_file():
        pytest.skip('an installed package: no pyproject.toml here')
    project = tomllib.loads(pyproject.read_text())['project']
    assert 'version' not in project and 'version' in project['dynamic']


def test_dash_dash_version_prints_the_version():
    done = subprocess.run(
        [sys.executable, '-m', 'tractor_subint', '--version'], capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    version = tractor_subint.__version__
    assert done.stdout == f'tractor_subint {version} (Python {platform.python_version()})\n'
