"""The shell every spawned child process runs around its entry function.

Whatever the backend (exec, fork, forkserver), a child process looks the same
from the inside:

- the main thread of the main interpreter owns SIGINT/SIGTERM and the
  lifeline (:class:`SignalForwarder`), and forwards both to the entry as bytes
  on ``cancel_fd``;
- the entry, ``entry(payload, ipc_fd, cancel_fd)``, runs on a worker thread,
  either in this main interpreter (``host='main'``) or in a fresh
  subinterpreter (``host='subint'``), where the three arguments cross the
  boundary as plain shareable values;
- ``ipc_fd`` is a socket already connected to the parent. Its hang-up is the
  lifeline: the parent is gone, cancel, and exit within
  :data:`LIFELINE_GRACE` seconds whatever the entry is doing.

Why a worker thread even in the main interpreter: in a child forked from a
non-main thread, CPython 3.13+ does not reliably run Python signal handlers
(``ai/conc-anal/fork_child_signal_handlers.md``), and trio's own Ctrl-C
handling depends on them. One shape for all backends keeps one boot path.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import Literal, NoReturn

from ._signal_forwarding import SignalForwarder
from ._subint_host import run_subint_here

HostKind = Literal['main', 'subint']
EntryFn = Callable[[bytes, int, int], None]

LIFELINE_GRACE = 0.5
"""Seconds a child whose parent is gone gets to cancel itself before it exits
anyway (each level of a tree adds at most this much)."""

_PAYLOAD = '__tractor_subint_payload__'
_IPC_FD = '__tractor_subint_ipc_fd__'
_CANCEL_FD = '__tractor_subint_cancel_fd__'
_ENTRY = '__tractor_subint_entry__'
_SYS_PATH = '__tractor_subint_sys_path__'

# Runs inside the fresh subinterpreter: its sys.path starts from the process
# defaults, not from what the main interpreter added at run time (pytest's
# pythonpath, a script's directory), so the main interpreter's path is copied.
_SUBINT_BOOTSTRAP = f'''
import sys
sys.path[:] = [p for p in {_SYS_PATH}.split('\\0') if p]
from tractor_subint.spawn._child_host import resolve_entry
resolve_entry({_ENTRY})({_PAYLOAD}, {_IPC_FD}, {_CANCEL_FD})
'''


def resolve_entry(entry: str) -> EntryFn:
    """Import ``'package.module:function'`` and return the function."""
    module_name, sep, attr = entry.partition(':')
    if not sep or not module_name or not attr:
        raise ValueError(f"entry must look like 'package.module:function', got {entry!r}")
    return getattr(importlib.import_module(module_name), attr)


def host_entry(
    entry: str,
    payload: bytes,
    ipc_fd: int,
    *,
    host: HostKind,
    name: str,
) -> int:
    """Run ``entry`` as this process's actor; return the exit code to use.

    Must be called on the main thread of the main interpreter. Returns 0,
    128 + signum when a forwarded signal ended the entry, or
    ``PARENT_GONE_EXIT`` when the lifeline hung up; re-raises what the entry
    raised (for a subinterpreter, as ``SubintExecError``).
    """
    with SignalForwarder() as forwarder:
        forwarder.watch_hangup(ipc_fd, grace=LIFELINE_GRACE)
        if host == 'subint':
            target: Callable[[], object] = partial(
                run_subint_here,
                _SUBINT_BOOTSTRAP,
                shared={
                    _ENTRY: entry,
                    _PAYLOAD: payload,
                    _IPC_FD: ipc_fd,
                    _CANCEL_FD: forwarder.read_fd,
                    _SYS_PATH: '\0'.join(sys.path),
                },
            )
        elif host == 'main':
            target = partial(resolve_entry(entry), payload, ipc_fd, forwarder.read_fd)
        else:
            raise ValueError(f"host must be 'main' or 'subint', got {host!r}")
        forwarder.run_in_worker_thread(target, thread_name=f'actor[{name}]')
    return forwarder.exit_code


def run_forked_child(
    entry: str,
    payload: bytes,
    ipc_fd: int,
    *,
    host: HostKind,
    name: str,
    env: Mapping[str, str],
) -> NoReturn:
    """A forked child's target: apply the request's extra environment, host
    the entry, exit with :func:`host_entry`'s code."""
    os.environ.update(env)
    sys.exit(host_entry(entry, payload, ipc_fd, host=host, name=name))
