"""``python -m tractor_subint.spawn._forkserver_main LISTEN_FD LIFELINE_FD``:
the forkserver process (see ``_forkserver``).

A module of its own, so that ``_forkserver`` is imported under its real name
even if the package's ``__init__`` (which runs first) comes to import it.
"""
from __future__ import annotations

import sys

from tractor_subint.spawn._forkserver import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
