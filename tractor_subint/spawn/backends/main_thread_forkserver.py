"""The ``main_thread_forkserver`` backend: fork, run the actor in the child's
main interpreter.

The fork happens on a dedicated main-interpreter thread of the spawning
process (:func:`~tractor_subint.spawn.fork_from_worker_thread`), so it is
cheap and inherits the parent's imports. A process that cannot fork safely
(it holds a live subinterpreter) asks the spawn tree's forkserver instead.

In the child, the actor's trio runs on the main thread, as in a ``python -m``
child (``_main_thread_host``): a debugger can own SIGINT and the terminal
there. SIGINT/SIGTERM reach the actor as cancellation bytes, and a keeper
thread holds the lifeline. The fork repairs CPython's record of the main
thread, without which signal handlers would not run reliably in a child
forked from a worker thread (``_main_tstate``).
"""
from __future__ import annotations

from .._contract import SpawnRequest
from .._process_handle import ProcessHandle
from ._forked import spawn_forked


async def main_thread_forkserver_proc(request: SpawnRequest) -> ProcessHandle:
    """Fork a child whose actor runs in the child's main interpreter."""
    return await spawn_forked(request, 'main')
