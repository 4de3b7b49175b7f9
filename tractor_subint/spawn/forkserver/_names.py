"""What the owner and the server of a forkserver must agree on before either
is loaded: how the server is started, and where its environment is saved.

Apart from both sides, so that the owner (imported whenever a root opens a
spawn tree) does not load the server, and the server does not load the owner.
"""
from __future__ import annotations

SERVER_MODULE = 'tractor_subint.spawn.forkserver'
"""Run as ``python -m SERVER_MODULE LISTEN_FD LIFELINE_FD``."""

SAVED_PYTHONPATH = 'TRACTOR_SUBINT_FORKSERVER_SAVED_PYTHONPATH'
"""Where the owner saves its PYTHONPATH (JSON, null if unset) while it puts
our package first on it; the server restores it for the children."""

DEATH_NOTICE = "the tree's forkserver"
"""How the owner's answer to a request its dead server left queued begins
(``the tree's forkserver (pid N) died: signal 9 (SIGKILL)``)."""
