"""The ``main_thread_forkserver`` backend: fork, run the actor in the child's
main interpreter.

The fork happens on a dedicated main-interpreter thread of the spawning
process (:func:`fork_from_worker_thread`), so it is cheap and inherits the
parent's imports. A process that cannot fork safely (it holds a live
subinterpreter, or the spawn request comes from inside one) asks the tree's
forkserver to fork instead.

In the child, trio runs on a worker thread of the main interpreter while the
main thread owns signals and the lifeline (``_child_host``): in a child forked
from a non-main thread, CPython 3.13+ does not reliably run Python signal
handlers, which trio's own Ctrl-C handling needs.
"""
from __future__ import annotations

from functools import partial

import trio

from ._child_host import HostKind, run_forked_child
from ._contract import ProcessHandle, SpawnRequest
from ._fork import fork_from_worker_thread, in_subinterpreter, live_subinterpreters
from ._forked_process import ForkedProcess


def can_fork_here() -> bool:
    """Whether this process may fork now (see ``ai/conc-anal/``)."""
    return not in_subinterpreter() and not live_subinterpreters()


async def spawn_forked(request: SpawnRequest, host: HostKind) -> ProcessHandle:
    """Fork a child that hosts ``request``'s entry in ``host``: directly when
    this process can fork, else through the forkserver."""
    if can_fork_here():
        pid = await trio.to_thread.run_sync(partial(
            fork_from_worker_thread,
            partial(
                run_forked_child, request.entry, request.boot_payload, request.ipc_fd,
                host=host, name=request.name, env=request.env,
            ),
            thread_name=f'tractor-subint-forker[{request.name}]',
            keep_fds=(request.ipc_fd,),
            stdio=request.stdio,
        ))
        return ForkedProcess(pid)
    if request.forkserver is None:
        raise RuntimeError(
            f'cannot spawn {request.name!r}: this process holds a subinterpreter, so '
            f'it must not fork, and no forkserver address was given'
        )
    from ._forkserver import spawn_via_forkserver

    return await spawn_via_forkserver(request.forkserver, request, host=host)


async def main_thread_forkserver_proc(request: SpawnRequest) -> ProcessHandle:
    """Fork a child whose actor runs in the child's main interpreter."""
    return await spawn_forked(request, 'main')
