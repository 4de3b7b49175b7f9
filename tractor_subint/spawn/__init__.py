"""Spawn backends behind one registry, and the primitives they share.

Nothing here knows about actors: a backend starts a child that runs an entry
function and returns a :class:`ProcessHandle` (see ``_contract``). This
module declares the public surface; each name is imported on first use (see
``tractor_subint._lazy``), so that a child or the forkserver process loads
only what it runs.

- Registry: :class:`Backend`, :func:`register_backend`, :func:`get_backend`,
  :func:`try_set_start_method`, :func:`current_start_method`, ...
- Contract: :class:`SpawnRequest`, :class:`ProcessHandle`,
  :class:`ChildExit`, :class:`ChildExitStatus`, the ``cancel_fd`` vocabulary.
- Spawn trees: :func:`open_tree`, :func:`current_tree` (the tree's forkserver).
- Primitives: :func:`fork_from_worker_thread`, :func:`wait_child`,
  :func:`run_subint_in_worker_thread`, :class:`SignalForwarder`,
  :func:`cancel_on_forwarded_signal`, :class:`ForkedProcess`, ...
- Warm pools: :func:`local_warm_pool`, :func:`close_local_pools`,
  :func:`aclose_local_pools` (``spawn/pool``).
- The forkserver itself: :mod:`tractor_subint.spawn.forkserver`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_module

__all__ = [
    'DEFAULT_METHOD',
    'ENV_VAR',
    'LIFELINE_BYTE',
    'PARENT_GONE_EXIT',
    'SIGNAL_FD_GLOBAL',
    'SPAWN_METHOD_KEYS',
    'STATUS_LOST_RETURNCODE',
    'Backend',
    'ChildExceptionInfo',
    'ChildExit',
    'ChildExitStatus',
    'ForkedProcess',
    'ForwardedSignal',
    'ProcessHandle',
    'SignalForwarder',
    'SpawnFn',
    'SpawnMethodKey',
    'SpawnRequest',
    'SpawnTree',
    'StdioPolicy',
    'SubinterpretersAliveError',
    'SubintExecError',
    'aclose_local_pools',
    'available_start_methods',
    'can_fork_here',
    'cancel_on_forwarded_signal',
    'close_local_pools',
    'current_start_method',
    'current_tree',
    'describe_cancel_byte',
    'fork_from_worker_thread',
    'fork_process',
    'forwarded_signal_fd',
    'get_backend',
    'in_subinterpreter',
    'live_subinterpreters',
    'local_warm_pool',
    'name_this_process',
    'open_tree',
    'pooled_interpreters',
    'refuse_unsafe_fork',
    'register_backend',
    'registered_backends',
    'reset_start_method',
    'run_subint_here',
    'run_subint_in_worker_thread',
    'run_subint_with_signal_forwarding',
    'selected_start_method',
    'try_set_start_method',
    'unregister_backend',
    'unusable_reason',
    'validate_start_method',
    'wait_child',
]

if TYPE_CHECKING:
    from ._contract import LIFELINE_BYTE as LIFELINE_BYTE
    from ._contract import PARENT_GONE_EXIT as PARENT_GONE_EXIT
    from ._contract import SpawnFn as SpawnFn
    from ._contract import SpawnRequest as SpawnRequest
    from ._contract import describe_cancel_byte as describe_cancel_byte
    from ._exit_status import ChildExceptionInfo as ChildExceptionInfo
    from ._exit_status import ChildExit as ChildExit
    from ._exit_status import ChildExitStatus as ChildExitStatus
    from ._fork import SubinterpretersAliveError as SubinterpretersAliveError
    from ._fork import can_fork_here as can_fork_here
    from ._fork import fork_from_worker_thread as fork_from_worker_thread
    from ._fork import in_subinterpreter as in_subinterpreter
    from ._fork import live_subinterpreters as live_subinterpreters
    from ._fork import refuse_unsafe_fork as refuse_unsafe_fork
    from ._fork import wait_child as wait_child
    from ._forked_process import ForkedProcess as ForkedProcess
    from ._forked_process import fork_process as fork_process
    from ._prelude import StdioPolicy as StdioPolicy
    from ._prelude import name_this_process as name_this_process
    from ._process_handle import STATUS_LOST_RETURNCODE as STATUS_LOST_RETURNCODE
    from ._process_handle import ProcessHandle as ProcessHandle
    from ._signal_forwarding import SIGNAL_FD_GLOBAL as SIGNAL_FD_GLOBAL
    from ._signal_forwarding import ForwardedSignal as ForwardedSignal
    from ._signal_forwarding import SignalForwarder as SignalForwarder
    from ._signal_forwarding import cancel_on_forwarded_signal as cancel_on_forwarded_signal
    from ._signal_forwarding import forwarded_signal_fd as forwarded_signal_fd
    from ._signal_forwarding import (
        run_subint_with_signal_forwarding as run_subint_with_signal_forwarding,
    )
    from ._spawn import DEFAULT_METHOD as DEFAULT_METHOD
    from ._spawn import ENV_VAR as ENV_VAR
    from ._spawn import SPAWN_METHOD_KEYS as SPAWN_METHOD_KEYS
    from ._spawn import Backend as Backend
    from ._spawn import SpawnMethodKey as SpawnMethodKey
    from ._spawn import available_start_methods as available_start_methods
    from ._spawn import current_start_method as current_start_method
    from ._spawn import get_backend as get_backend
    from ._spawn import register_backend as register_backend
    from ._spawn import registered_backends as registered_backends
    from ._spawn import reset_start_method as reset_start_method
    from ._spawn import selected_start_method as selected_start_method
    from ._spawn import try_set_start_method as try_set_start_method
    from ._spawn import unregister_backend as unregister_backend
    from ._spawn import unusable_reason as unusable_reason
    from ._spawn import validate_start_method as validate_start_method
    from ._subint_host import SubintExecError as SubintExecError
    from ._subint_host import run_subint_here as run_subint_here
    from ._subint_host import run_subint_in_worker_thread as run_subint_in_worker_thread
    from ._tree import SpawnTree as SpawnTree
    from ._tree import current_tree as current_tree
    from ._tree import open_tree as open_tree
    from .pool._claim import aclose_local_pools as aclose_local_pools
    from .pool._claim import close_local_pools as close_local_pools
    from .pool._claim import local_warm_pool as local_warm_pool
    from .pool._interpreters import pooled_interpreters as pooled_interpreters

__getattr__, __dir__ = lazy_module(__name__, {
    '._contract': (
        'LIFELINE_BYTE', 'PARENT_GONE_EXIT', 'SpawnFn', 'SpawnRequest', 'describe_cancel_byte',
    ),
    '._exit_status': ('ChildExceptionInfo', 'ChildExit', 'ChildExitStatus'),
    '._fork': (
        'SubinterpretersAliveError', 'can_fork_here', 'fork_from_worker_thread',
        'in_subinterpreter', 'live_subinterpreters', 'refuse_unsafe_fork', 'wait_child',
    ),
    '._forked_process': ('ForkedProcess', 'fork_process'),
    '._prelude': ('StdioPolicy', 'name_this_process'),
    '._process_handle': ('STATUS_LOST_RETURNCODE', 'ProcessHandle'),
    '._signal_forwarding': (
        'SIGNAL_FD_GLOBAL', 'ForwardedSignal', 'SignalForwarder', 'cancel_on_forwarded_signal',
        'forwarded_signal_fd', 'run_subint_with_signal_forwarding',
    ),
    '._spawn': (
        'DEFAULT_METHOD', 'ENV_VAR', 'SPAWN_METHOD_KEYS', 'Backend', 'SpawnMethodKey',
        'available_start_methods', 'current_start_method', 'get_backend', 'register_backend',
        'registered_backends', 'reset_start_method', 'selected_start_method',
        'try_set_start_method', 'unregister_backend', 'unusable_reason', 'validate_start_method',
    ),
    '._subint_host': ('SubintExecError', 'run_subint_here', 'run_subint_in_worker_thread'),
    '._tree': ('SpawnTree', 'current_tree', 'open_tree'),
    '.pool._claim': ('aclose_local_pools', 'close_local_pools', 'local_warm_pool'),
    '.pool._interpreters': ('pooled_interpreters',),
})
