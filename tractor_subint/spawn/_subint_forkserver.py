"""The ``subint_forkserver`` primitives, under the name upstream tractor and
earlier releases use: fork from a main-interpreter worker thread, host trio
in a fresh subinterpreter in the child, reap the child.

The pieces live in one module per concept and are declared in
:mod:`tractor_subint.spawn`; this module re-exports them, and the backend
function (``spawn/backends/subint_forkserver.py``):

- :func:`fork_from_worker_thread` and :func:`wait_child` (``_fork``): the
  fork itself, its guard and the child prelude; the blocking reap with a
  classification;
- :func:`run_subint_in_worker_thread` (``_subint_host``): a subinterpreter
  on a dedicated thread, :class:`SubintExecError` on failure, safe teardown;
- :class:`SignalForwarder`, :func:`cancel_on_forwarded_signal`,
  :func:`run_subint_with_signal_forwarding` (``_signal_forwarding``): the
  child's main interpreter owns SIGINT/SIGTERM and cancels the subint's trio;
- :class:`ForkedProcess` (``_forked_process``): a ``trio.Process``-shaped
  handle for supervising a forked child.
"""
from __future__ import annotations

from ._exit_status import ChildExceptionInfo, ChildExit, ChildExitStatus
from ._fork import (
    fork_from_worker_thread,
    in_subinterpreter,
    live_subinterpreters,
    refuse_unsafe_fork,
    wait_child,
)
from ._forked_process import ForkedProcess
from ._prelude import StdioPolicy
from ._signal_forwarding import (
    SIGNAL_FD_GLOBAL,
    ForwardedSignal,
    SignalForwarder,
    cancel_on_forwarded_signal,
    forwarded_signal_fd,
    run_subint_with_signal_forwarding,
)
from ._subint_host import SubintExecError, run_subint_here, run_subint_in_worker_thread
from .backends.subint_forkserver import subint_forkserver_proc

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
