"""``python -m tractor_subint.spawn._forkserver_main LISTEN_FD LIFELINE_FD``:
the forkserver process (see ``_forkserver``).

A module of its own, so that ``_forkserver_server`` is imported under its
real name even if the package's ``__init__`` (which runs first) comes to
import it. It imports the server only, not the owner or requester sides.
"""
from __future__ import annotations

import sys

from tractor_subint.spawn._forkserver_server import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
