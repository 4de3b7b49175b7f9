"""The ``subint_forkserver`` primitives: fork from a main-interpreter worker
thread, host trio in a fresh subinterpreter in the child, reap the child.

The pieces live in one module per concept; this module is their public face
and it holds the ``subint_forkserver`` backend, :func:`subint_forkserver_proc`:

- :func:`fork_from_worker_thread` (``_fork``): the fork itself, its guard and
  the child prelude, with :class:`ChildExit` codes;
- :func:`run_subint_in_worker_thread` (``_subint_host``): a subinterpreter on
  a dedicated thread, :class:`SubintExecError` on failure, safe teardown;
- :class:`SignalForwarder`, :func:`cancel_on_forwarded_signal`,
  :func:`run_subint_with_signal_forwarding` (``_signal_forwarding``): the
  child's main interpreter owns SIGINT/SIGTERM and cancels the subint's trio;
- :func:`wait_child` (``_reap``): blocking reap plus a classification;
- :class:`ForkedProcess` (``_forked_process``): a ``trio.Process``-shaped
  handle for supervising a forked child.
"""
from __future__ import annotations

from ._child_report import ChildExceptionInfo
from ._fork import (
    ChildExit,
    fork_from_worker_thread,
    in_subinterpreter,
    live_subinterpreters,
    refuse_unsafe_fork,
)
from ._forked_process import ForkedProcess
from ._prelude import StdioPolicy
from ._reap import ChildExitStatus, wait_child
from ._signal_forwarding import (
    SIGNAL_FD_GLOBAL,
    ForwardedSignal,
    SignalForwarder,
    cancel_on_forwarded_signal,
    forwarded_signal_fd,
    run_subint_with_signal_forwarding,
)
from ._subint_host import SubintExecError, run_subint_here, run_subint_in_worker_thread
from ._contract import ProcessHandle, SpawnRequest
from ._main_thread_forkserver import spawn_forked

__all__ = [
    'SIGNAL_FD_GLOBAL',
    'ChildExceptionInfo',
    'ChildExit',
    'ChildExitStatus',
    'ForkedProcess',
    'ForwardedSignal',
    'SignalForwarder',
    'StdioPolicy',
    'SubintExecError',
    'cancel_on_forwarded_signal',
    'fork_from_worker_thread',
    'forwarded_signal_fd',
    'in_subinterpreter',
    'live_subinterpreters',
    'refuse_unsafe_fork',
    'run_subint_here',
    'run_subint_in_worker_thread',
    'run_subint_with_signal_forwarding',
    'subint_forkserver_proc',
    'wait_child',
]


async def subint_forkserver_proc(request: SpawnRequest) -> ProcessHandle:
    """Fork a child whose actor runs under trio in a fresh subinterpreter on a
    worker thread, while the child's main interpreter owns signals and the
    lifeline. From a process that holds a subinterpreter (a
    ``subint_forkserver`` actor spawning its own children) the fork goes
    through the tree's forkserver."""
    return await spawn_forked(request, 'subint')
