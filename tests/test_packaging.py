"""What an installed package must carry besides its modules."""
from __future__ import annotations

import pathlib

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
