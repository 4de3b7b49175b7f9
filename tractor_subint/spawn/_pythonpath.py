"""Make exec'd processes import this very ``tractor_subint``."""
from __future__ import annotations

import os
from collections.abc import Mapping

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def with_package_on_pythonpath(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the directory holding this ``tractor_subint`` first on
    ``PYTHONPATH``: an exec'd ``python -m tractor_subint...`` then imports
    the same code, even when the package is not installed (a checkout)."""
    paths = [_PACKAGE_PARENT, *filter(None, env.get('PYTHONPATH', '').split(os.pathsep))]
    return {**env, 'PYTHONPATH': os.pathsep.join(dict.fromkeys(paths))}
