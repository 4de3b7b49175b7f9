"""A warm pool member: a child forked ahead of time, waiting for its spec.

Forked by the pool's owner (``_owner``) like any child (prelude, report pipe),
it prepares what a ``subint_forkserver`` child spends its spawn on: it
creates its subinterpreter and imports the entry's module in it (trio,
msgspec and the runtime, for the runtime's entry). It warms on a thread of
its own, at a lowered priority (``spawn._priority``: under ``SCHED_IDLE``
until a spawn claims it, where its owner may then hurry it), while its main
thread waits on the control socket: when warm, it says :data:`READY` there.
Its lifeline meanwhile is that socket: when the owner closes it (the pool
drains) or dies, the member exits.

The protocol, both sides of which are here (:func:`handout_frame` is what
the owner sends, :func:`serve_as_pool_member` what the member does):

1. member -> owner: :data:`READY`, once warm, with the CPU seconds that took;
2. owner -> member, at any time after the fork (a spawn may claim a member
   that is still warming rather than fork a cold child): one frame, the
   :class:`ChildSpec` to host, with the child's IPC socket attached and,
   when the spawner's stdio is inherited, its fds 0/1/2 after it. The owner
   then closes the socket.

The member finishes warming, then becomes exactly what a cold fork at that
moment would have been: the spawner's stdio (or the request's stdio
policy), environment and working directory, and the same
:func:`host_entry`, run in the warm subinterpreter.
"""
from __future__ import annotations

import os
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, NoReturn

from ..._exceptions import ProtocolError
from .._child_host import host_entry
from .._contract import ChildSpec
from .._fds import close_fds
from .._prelude import apply_stdio_policy, name_this_process, resolve_stdio_policy
from .._priority import lower_this_thread
from .._subint_host import SubintExecError, import_in_subint, new_subint
from .._wire import WireChannel

READY = b'R'
"""What a member writes on its control socket once it is warm, followed by
the CPU seconds its warm-up took (ASCII: what a cold child's boot costs
here, which the owner's refill timing counts on)."""


def ready_message() -> bytes:
    """:data:`READY` with this process's CPU seconds so far."""
    return READY + f'{time.process_time():.4f}'.encode()


def parse_boot_cpu(message: bytes) -> float | None:
    """The CPU seconds a READY message says (None if it says none)."""
    try:
        seconds = float(message[len(READY):])
    except ValueError:
        return None
    return seconds if 0 < seconds < float('inf') else None


@dataclass(frozen=True)
class WarmUp:
    """What a member prepares before it is handed a spec."""

    preload: tuple[str, ...]
    """Modules to import in its subinterpreter (the child shell's own module,
    which the bootstrap imports first, is always added)."""
    sys_path: tuple[str, ...]
    idle: bool = False
    """Warm under ``SCHED_IDLE`` until claimed (else at nice ``BOOT_NICE``;
    see ``spawn._priority``). The actor, started later by the member's main
    thread, runs at normal priority either way."""

    def modules(self) -> tuple[str, ...]:
        return ('tractor_subint.spawn._child_host', *self.preload)


def handout_frame(spec: ChildSpec, *, stdio: str, cwd: str, environ: dict[str, str]) -> dict[str, Any]:
    """What the owner sends a member to make it ``spec``'s child (attach the
    IPC socket, then fds 0/1/2 when ``stdio`` is ``'inherit'`` and the
    spawner's own are to be used)."""
    return {'child': spec.to_json(), 'stdio': stdio, 'cwd': cwd, 'environ': environ}


class _Warming:
    """The member's subinterpreter, being created and warmed on a thread.

    :attr:`done_fd` becomes readable when it is finished; :meth:`result`
    waits for that and returns the interpreter's id.
    """

    def __init__(self, warm_up: WarmUp) -> None:
        self._warm_up = warm_up
        self._interp_id: int | None = None
        self._done_r, self._done_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name='tractor-subint-warming', daemon=True)
        self._thread.start()

    @property
    def done_fd(self) -> int:
        return self._done_r

    def _run(self) -> None:
        try:
            lower_this_thread(idle=self._warm_up.idle)
            self._interp_id = new_subint()
            import_in_subint(self._interp_id, self._warm_up.sys_path, self._warm_up.modules())
        except SubintExecError:
            pass  # an import failed: the actor's own boot meets it again and reports it
        finally:
            os.write(self._done_w, b'x')

    def result(self) -> int | None:
        """The warm subinterpreter's id once it is ready (None if even its
        creation failed: the host then makes a fresh one)."""
        self._thread.join()
        close_fds([self._done_r, self._done_w])
        return self._interp_id


def _await_handout(control: WireChannel, warming: _Warming) -> tuple[dict[str, Any], list[int]] | None:
    """Block until the spawn's frame arrives, saying READY once warm meanwhile;
    None if the owner hung up first."""
    poller = select.poll()
    poller.register(control.fileno(), select.POLLIN | select.POLLRDHUP)
    poller.register(warming.done_fd, select.POLLIN)
    while True:
        control.receive_available()
        frame = control.next_frame()
        if frame is not None:
            return frame
        if control.eof:
            return None
        for fd, _mask in poller.poll():
            if fd == warming.done_fd:
                poller.unregister(fd)
                try:
                    control.sock.send(ready_message())
                except OSError:
                    pass  # the owner is gone: the next poll sees the hang-up


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
    warming = _Warming(warm_up)
    control = WireChannel(socket.socket(fileno=control_fd))
    try:
        handout = _await_handout(control, warming)
    except ProtocolError:
        handout = None
    finally:
        control.close()
    if handout is None:
        # Drained (or the owner is gone) before being needed; the process
        # ends with os._exit, whatever the warming thread is doing.
        sys.exit(0)
    # Warm first, then become the child: a chdir or an environment change
    # under an import in progress would change what it finds.
    interp_id = warming.result()
    sys.exit(host_entry(_become(*handout), interp_id=interp_id))
