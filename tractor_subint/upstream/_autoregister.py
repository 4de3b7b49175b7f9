"""Run by the ``tractor_subint_upstream.pth`` hook at every interpreter
start: registers our backends only when ``TRACTOR_SPAWN_METHOD`` names one
of our keys (a fresh interpreter that upstream tractor will tell to use
it), and costs nothing otherwise."""
from __future__ import annotations

import os
import sys

from ._patches import OUR_KEYS


def maybe_register() -> None:
    if os.environ.get('TRACTOR_SPAWN_METHOD') not in OUR_KEYS:
        return
    try:
        from . import register

        register()
    except ImportError:
        pass  # no tractor here: nothing to register into
    except RuntimeError as exc:  # an upstream we cannot patch: say so once, go on
        print(f'tractor_subint: {exc}', file=sys.stderr)
