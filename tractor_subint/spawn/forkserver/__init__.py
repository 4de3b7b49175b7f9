"""A forkserver: a clean exec'd process that forks actor children for others.

A process that holds a live subinterpreter cannot fork (the child crashes in
CPython's post-fork cleanup, whatever thread forks), and a thread running
inside a subinterpreter cannot fork at all (``ai/conc-anal/``). An actor
hosted in a subinterpreter therefore asks a *forkserver* to fork its
children: a process started with ``exec`` (never ``fork``), that never
creates a subinterpreter, and so can always fork safely.

One module per part:

- ``_owner``, :func:`start_forkserver` / :class:`Forkserver`: binds a
  listening Unix socket in a private temp dir, then execs the server with
  that socket and a *lifeline* (a pipe read end; the owner keeps the write
  end). The socket is bound before the exec, so its address is usable at
  once: connections queue until the server accepts them. Starting it only
  execs (``subprocess``), so it works from inside a subinterpreter too.
  :class:`OnDemandForkserver` binds the socket at once and execs the server
  only when the first request connects: a spawn tree's forkserver.
- ``_server``, :func:`serve`: one thread, one ``poll()`` loop over the
  listener, the requests, the lifeline and the pidfds of its children. Run
  by ``__main__``; it imports neither of the other sides, nor trio.
- ``_client``, :func:`spawn_via_forkserver` / :class:`ForkserverChild`: the
  requester side, async (trio), usable from inside a subinterpreter.
- ``_names``: the two names the owner and the server share (the server's
  module, the saved ``PYTHONPATH``), so that neither loads the other.

Both ends speak ``spawn._wire``'s frames (fds attached), which warm pool
members speak too.

Protocol (one connection per child, open for the child's whole life; every
frame is a 4-byte big-endian length plus a UTF-8 JSON object):

1. requester -> server: the request ``{child: {name, entry, payload (hex),
   host, tree, env}, stdio, sys_path}`` with the child's IPC socket attached
   (SCM_RIGHTS).
2. server -> requester: ``{"pid": N}`` with a pidfd of the child attached,
   or ``{"error": "..."}`` and the connection closes.
3. server -> requester, once the server has reaped the child:
   ``{"returncode": N, "exception": {type_name, message, traceback} | null}``,
   then the connection closes.

Lifetimes: the requester signals and watches the child through its own
pidfd, which refers to exactly that process: no pid-reuse race, even though
the child is not the requester's. A requester that hangs up early changes
nothing for the child; the server still reaps it. When the lifeline hits EOF
(the owner closed it, or died) the server stops and exits without touching
its children: each one has its own lifeline, its IPC socket to its logical
parent.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_module

__all__ = [
    'SPAWN_REPLY_TIMEOUT',
    'Forkserver',
    'ForkserverChild',
    'ForkserverError',
    'OnDemandForkserver',
    'spawn_via_forkserver',
    'start_forkserver',
]

if TYPE_CHECKING:
    from ._client import SPAWN_REPLY_TIMEOUT as SPAWN_REPLY_TIMEOUT
    from ._client import ForkserverChild as ForkserverChild
    from ._client import ForkserverError as ForkserverError
    from ._client import spawn_via_forkserver as spawn_via_forkserver
    from ._owner import Forkserver as Forkserver
    from ._owner import OnDemandForkserver as OnDemandForkserver
    from ._owner import start_forkserver as start_forkserver

# The server process imports this package first: it must load neither side.
__getattr__, __dir__ = lazy_module(__name__, {
    '._client': ('SPAWN_REPLY_TIMEOUT', 'ForkserverChild', 'ForkserverError', 'spawn_via_forkserver'),
    '._owner': ('Forkserver', 'OnDemandForkserver', 'start_forkserver'),
})
