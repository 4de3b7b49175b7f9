"""Where to read the analyses behind our refusals.

The documents live in the source tree's ``ai/conc-anal/``; a built package
carries copies as package data (``tractor_subint/_analysis/``, copied by
``setup.py``), so an error message can name a file that exists on the user's
machine whichever way the package was installed.
"""
from __future__ import annotations

import pathlib

_PACKAGE = pathlib.Path(__file__).resolve().parents[1]
_SHIPPED = _PACKAGE / '_analysis'
_SOURCE_TREE = _PACKAGE.parent / 'ai' / 'conc-anal'


def analysis_doc(name: str) -> str:
    """The path of the analysis document ``name`` (e.g.
    ``fork_with_live_subinterpreter.md``): the shipped copy, else the source
    tree's, else the bare name under ``ai/conc-anal/``."""
    for folder in (_SHIPPED, _SOURCE_TREE):
        if (folder / name).is_file():
            return str(folder / name)
    return f'ai/conc-anal/{name} in the tractor_subint sources'


FORK_IN_SUBINT_DOC = analysis_doc('subint_fork_blocked_by_cpython_post_fork.md')
FORK_WITH_LIVE_SUBINT_DOC = analysis_doc('fork_with_live_subinterpreter.md')
