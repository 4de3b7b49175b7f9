"""``python -m tractor_subint.spawn.forkserver LISTEN_FD LIFELINE_FD``: the
forkserver process (see :mod:`tractor_subint.spawn.forkserver`)."""
from __future__ import annotations

import sys

from ._server import main

if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
