"""The ``main_thread_forkserver`` backend: fork, run the actor in the child's
main interpreter.

The fork happens on a dedicated main-interpreter thread of the spawning
process (:func:`~tractor_subint.spawn.fork_from_worker_thread`), so it is
cheap and inherits the parent's imports. A process that cannot fork safely
(it holds a live subinterpreter) asks the spawn tree's forkserver instead.

In the child, trio runs on a worker thread of the main interpreter while the
main thread owns signals and the lifeline (``_child_host``): in a child forked
from a non-main thread, CPython 3.13+ does not reliably run Python signal
handlers, which trio's own Ctrl-C handling needs.
"""
from __future__ import annotations

from .._contract import SpawnRequest
from .._process_handle import ProcessHandle
from ._forked import spawn_forked


async def main_thread_forkserver_proc(request: SpawnRequest) -> ProcessHandle:
    """Fork a child whose actor runs in the child's main interpreter."""
    return await spawn_forked(request, 'main')
