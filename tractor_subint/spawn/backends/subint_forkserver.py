"""The ``subint_forkserver`` backend: fork, run the actor under trio in a
fresh subinterpreter of the child.

The child's main interpreter owns signals and the lifeline and forwards them
into the subinterpreter (``_child_host``). Such a child holds a
subinterpreter, so it cannot fork: its own forking children are forked by the
spawn tree's forkserver, which the tree's root starts on first need.
"""
from __future__ import annotations

from .._contract import SpawnRequest
from .._process_handle import ProcessHandle
from ._forked import spawn_forked


async def subint_forkserver_proc(request: SpawnRequest) -> ProcessHandle:
    """Fork a child whose actor runs under trio in a fresh subinterpreter on
    a worker thread, while the child's main interpreter owns signals and the
    lifeline. From a process that holds a subinterpreter (a
    ``subint_forkserver`` actor spawning its own children) the fork goes
    through the tree's forkserver."""
    return await spawn_forked(request, 'subint')
