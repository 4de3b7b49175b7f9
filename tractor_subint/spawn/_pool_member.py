"""A warm pool member: a child forked ahead of time, waiting for its spec.

Forked by the pool's owner (``_pool``) like any child (prelude, report pipe),
it prepares what a ``subint_forkserver`` child spends its spawn on: it
creates its subinterpreter and imports the entry's module in it (trio,
msgspec and the runtime, for the runtime's entry). Then it says ready on its
control socket and waits. Its lifeline meanwhile is that socket: when the
owner closes it (the pool drains) or dies, the member exits.

A spawn hands it a :class:`ChildSpec` and, attached, the child's IPC socket
plus the spawner's current fds 0/1/2. The member then becomes exactly what a
cold fork at that moment would have been: the spawner's stdio (or the
request's stdio policy), environment and working directory, and the same
:func:`host_entry`, run in the warm subinterpreter.
"""
from __future__ import annotations

import os
import select
import socket
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from .._exceptions import ProtocolError
from ._child_host import ChildSpec, host_entry
from ._fds import close_fds
from ._prelude import apply_stdio_policy, name_this_process, resolve_stdio_policy
from ._subint_host import import_in_subint, new_subint
from .forkserver._wire import WireChannel

READY = b'R'
"""What a member writes on its control socket once it is warm."""

@dataclass(frozen=True)
class WarmUp:
    """What a member prepares before it is handed a spec."""

    preload: tuple[str, ...]
    """Modules to import in its subinterpreter (the child shell's own module,
    which the bootstrap imports first, is always added)."""
    sys_path: tuple[str, ...]

    def modules(self) -> tuple[str, ...]:
        return ('tractor_subint.spawn._child_host', *self.preload)


def handout_frame(spec: ChildSpec, *, stdio: str, cwd: str, environ: dict[str, str]) -> dict[str, Any]:
    """What a spawn sends a member (attach the IPC socket, then fds 0/1/2
    when ``stdio`` is ``'inherit'``)."""
    return {'child': spec.to_json(), 'stdio': stdio, 'cwd': cwd, 'environ': environ}


def _warm_subint(warm_up: WarmUp) -> int:
    interp_id = new_subint()
    import_in_subint(interp_id, warm_up.sys_path, warm_up.modules())
    return interp_id


def _await_handout(control: WireChannel) -> tuple[dict[str, Any], list[int]] | None:
    """Block until the spawn's frame arrives; None if the owner hung up."""
    poller = select.poll()
    poller.register(control.fileno(), select.POLLIN | select.POLLRDHUP)
    while True:
        frame = control.next_frame()
        if frame is not None:
            return frame
        if control.eof:
            return None
        poller.poll()
        control.receive_available()


def _become(frame: dict[str, Any], fds: list[int]) -> ChildSpec:
    """Take on the spawner's stdio, environment and cwd; the spec to host."""
    ipc_fd, *stdio_fds = fds
    if stdio_fds:
        for target, fd in enumerate(stdio_fds):
            os.dup2(fd, target)
        close_fds(stdio_fds)
    else:
        apply_stdio_policy(resolve_stdio_policy(frame['stdio']))
    os.chdir(frame['cwd'])
    os.environ.clear()
    os.environ.update(frame['environ'])
    return ChildSpec.from_json(frame['child'], ipc_fd=ipc_fd)


def serve_as_pool_member(control_fd: int, warm_up: WarmUp) -> NoReturn:
    """A member's life (the target of its fork): warm up, wait, host."""
    name_this_process('ts:warm')
    interp_id = _warm_subint(warm_up)
    os.write(control_fd, READY)
    control = WireChannel(socket.socket(fileno=control_fd))
    try:
        handout = _await_handout(control)
    except ProtocolError:
        handout = None
    finally:
        control.close()
    if handout is None:
        sys.exit(0)  # drained (or the owner is gone) before being needed
    sys.exit(host_entry(_become(*handout), interp_id=interp_id))
