"""Test hooks that the spawn layer reads (stdlib only: the forkserver
process, which stays trio-free, reads them too).

The one variable and its syntax are ``tractor_subint.runtime._testhooks``'s
(``TRACTOR_SUBINT_TEST_HOOKS="point=value,..."``); the points read here:

- ``forkserver_ignore_requests=1``: the forkserver never accepts a request
  (they stay queued in its listener's backlog: a spawn "in flight" for as
  long as the test wants, e.g. until it kills the server).
- ``forkserver_sigint_at_exec=1``: the owner sends SIGINT to its own process
  group as soon as it has exec'd the forkserver, while the server's
  interpreter is still starting (Ctrl-C at the worst moment).
"""
from __future__ import annotations

import os

HOOKS_ENV = 'TRACTOR_SUBINT_TEST_HOOKS'


def hooks() -> dict[str, str]:
    """The hooks set in the environment, ``{point: value}``."""
    spec = os.environ.get(HOOKS_ENV, '')
    pairs = (item.partition('=') for item in spec.split(',') if item.strip())
    return {key.strip(): value.strip() for key, _, value in pairs}


def hook_enabled(point: str) -> bool:
    return bool(hooks().get(point))
