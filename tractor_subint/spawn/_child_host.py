"""The shell every spawned child process runs around its entry function.

Whatever the backend (exec, fork, forkserver), a child process looks the same
from the inside:

- the entry, ``entry(payload, ipc_fd, cancel_fd)``, runs either in this main
  interpreter (``host='main'``) or in a fresh subinterpreter
  (``host='subint'``), where its arguments cross the boundary as plain
  shareable values;
- SIGINT/SIGTERM and the lifeline reach the entry as bytes on ``cancel_fd``;
- ``ipc_fd`` is a socket already connected to the parent. Its hang-up is the
  lifeline: the parent is gone, cancel, and exit within
  :data:`LIFELINE_GRACE` seconds whatever the entry is doing;
- the interpreter that runs the entry belongs to its parent's spawn tree
  (:func:`~tractor_subint.spawn._tree.inherit_tree`): its own children are
  forked by the tree's forkserver when it cannot fork itself.

Where the entry runs:

- ``host='main'``: on the process's main thread
  (:class:`~tractor_subint.spawn._main_thread_host.MainThreadHost`), as in a
  ``python -m`` child, so that code which needs the main thread (a debugger
  that owns SIGINT while its REPL has the terminal) works; a keeper thread
  holds the lifeline.
- ``host='subint'``: on a worker thread, inside the subinterpreter, while
  the main thread of the main interpreter owns the signals and the lifeline
  (:class:`SignalForwarder`): no subinterpreter ever runs signal handlers.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

from ._contract import ChildSpec
from ._main_thread_host import MainThreadHost
from ._prelude import flush_std_streams, name_this_process
from ._signal_forwarding import SignalForwarder
from ._subint_host import boot_subint, run_subint_here
from ._tree import inherit_tree

EntryFn = Callable[[bytes, int, int], None]

LIFELINE_GRACE = 0.5
"""Seconds a child whose parent is gone gets to cancel itself before it exits
anyway (each level of a tree adds at most this much)."""

_SPEC = '__tractor_subint_child__'

# Runs inside the fresh subinterpreter: its sys.path starts from the process
# defaults, not from what the main interpreter added at run time (pytest's
# pythonpath, a script's directory), so the main interpreter's path is copied.
_SUBINT_BOOTSTRAP = f'''
import sys
_sys_path, *_args = {_SPEC}
sys.path[:] = _sys_path
from tractor_subint.spawn._child_host import run_entry_in_subint
run_entry_in_subint(*_args)
'''


def resolve_entry(entry: str) -> EntryFn:
    """Import ``'package.module:function'`` and return the function."""
    module_name, sep, attr = entry.partition(':')
    if not sep or not module_name or not attr:
        raise ValueError(f"entry must look like 'package.module:function', got {entry!r}")
    fn: EntryFn = getattr(importlib.import_module(module_name), attr)
    return fn


def run_entry_here(entry: str, payload: bytes, ipc_fd: int, cancel_fd: int, tree: str | None) -> None:
    """In the interpreter that hosts the entry: join the spawn tree, run it."""
    inherit_tree(tree)
    try:
        resolve_entry(entry)(payload, ipc_fd, cancel_fd)
    finally:
        flush_std_streams()  # the process may end with os._exit


def run_entry_in_subint(environ: tuple[tuple[str, str], ...], *entry_args: Any) -> None:
    """:func:`run_entry_here`, inside the subinterpreter, whose ``os.environ``
    first becomes the main interpreter's ``environ``: an interpreter copies
    the environment when it imports ``os``, which a warm one did earlier."""
    wanted = dict(environ)
    for key in set(os.environ) - set(wanted):
        del os.environ[key]
    os.environ.update(wanted)
    run_entry_here(*entry_args)


def host_entry(spec: ChildSpec, *, interp_id: int | None = None) -> int:
    """Run ``spec``'s entry as this process's actor; return the exit code to use.

    Must be called on the main thread of the main interpreter. Applies the
    spec's environment and ``sys.path`` first. For ``host='subint'``, runs
    the entry in subinterpreter ``interp_id`` (one prepared ahead, as a warm
    pool member does) or in a fresh one; the process is about to exit, so
    the subinterpreter is not torn down. Returns 0,
    128 + signum when a forwarded signal ended the entry, or
    ``PARENT_GONE_EXIT`` when the lifeline hung up; re-raises what the entry
    raised (for a subinterpreter, as ``SubintExecError``).
    """
    name_this_process(f'ts:{spec.name}')
    os.environ.update(spec.env)
    if spec.sys_path is not None:
        sys.path[:] = spec.sys_path
    if spec.host == 'main':
        with MainThreadHost(lifeline_fd=spec.ipc_fd, grace=LIFELINE_GRACE) as host:
            run_entry_here(spec.entry, spec.payload, spec.ipc_fd, host.read_fd, spec.tree)
        return host.exit_code
    with SignalForwarder() as forwarder:
        forwarder.watch_hangup(spec.ipc_fd, grace=LIFELINE_GRACE)
        forwarder.run_in_worker_thread(
            partial(
                _boot_then_run,
                spec.entry,
                # A tuple of plain values: what crosses into a subinterpreter.
                shared={_SPEC: (
                    tuple(sys.path), tuple(os.environ.items()), spec.entry, spec.payload,
                    spec.ipc_fd, forwarder.read_fd, spec.tree,
                )},
                interp_id=interp_id,
            ),
            thread_name=f'actor[{spec.name}]',
        )
    return forwarder.exit_code


def _boot_then_run(entry: str, *, shared: dict[str, object], interp_id: int | None) -> None:
    """On the actor's thread: boot a subinterpreter for ``entry`` (unless a
    warm one is given) at a lowered priority (``_priority``), then run the
    bootstrap in it at this thread's own. The process is about to exit, so
    the subinterpreter is not torn down."""
    if interp_id is None:
        interp_id = boot_subint(sys.path, (__name__, entry.partition(':')[0]))
    run_subint_here(_SUBINT_BOOTSTRAP, shared=shared, interp_id=interp_id, teardown=False)


def run_forked_child(spec: ChildSpec) -> NoReturn:
    """A forked child's target: host the entry, exit with :func:`host_entry`'s code."""
    sys.exit(host_entry(spec))
