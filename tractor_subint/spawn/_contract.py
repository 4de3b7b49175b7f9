"""What every spawn backend is given, and what its child sees.

``spawn/`` knows nothing about actors, portals or messages: a backend is told
"start a child that runs ``entry(boot_payload, ipc_fd, cancel_fd)``" and returns a
:class:`~tractor_subint.spawn.ProcessHandle` the runtime can supervise. The runtime does the
handshake, supervision and the kill ladder once, for every backend.

The child's side of the contract:

- ``ipc_fd`` is a socket already connected to the parent; its hang-up is the
  child's lifeline (the parent is gone).
- ``cancel_fd`` is a pipe the child's host writes one byte to when the entry
  must stop: a forwarded signal's number, or :data:`LIFELINE_BYTE`
  (:func:`describe_cancel_byte` says which in words).
- The process exits with a :class:`ChildExit` code, ``128 + signum`` after a
  forwarded signal, or dies by a signal.
"""
from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._exit_status import ChildExit
from ._prelude import StdioPolicy

if TYPE_CHECKING:
    from ._process_handle import ProcessHandle

LIFELINE_BYTE = 0xFF
"""Written on ``cancel_fd`` when the lifeline hangs up; no signal has this number."""
PARENT_GONE_EXIT = int(ChildExit.PARENT_GONE)
"""Exit code of a child whose lifeline hung up (its parent is gone)."""


def describe_cancel_byte(byte: int) -> str:
    """What a byte read from ``cancel_fd`` means, in words."""
    if byte == LIFELINE_BYTE:
        return 'parent gone (lifeline hung up)'
    try:
        return f'{signal.Signals(byte).name} forwarded by the host'
    except ValueError:
        return f'host cancel byte {byte}'


@dataclass(frozen=True)
class SpawnRequest:
    """One child to start."""

    name: str
    """Human-readable name of the child (thread and process titles, errors)."""
    entry: str
    """``'package.module:function'``: the child's boot function, called as
    ``function(boot_payload, ipc_fd, cancel_fd)`` (see ``_child_host``). It
    must run the same in a main interpreter or in a subinterpreter."""
    boot_payload: bytes = b''
    """Opaque to ``spawn/``; crosses process and interpreter boundaries as bytes."""
    ipc_fd: int = -1
    """This process's fd of a socket already connected to the parent; the
    child gets it (maybe under another number) as ``ipc_fd``. Its hang-up is
    the child's lifeline. The caller keeps ownership of this fd."""
    stdio: StdioPolicy | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the child."""
    warm_pool: int | None = None
    """Size of the warm pool for backends that keep one (None: the
    ``$TRACTOR_SUBINT_WARM_POOL`` default; 0: always fork cold)."""
    interpreter: str | None = None
    """The kind of subinterpreter to host the child in, for backends that
    offer a choice (:attr:`Backend.interpreters`); None: the backend's default."""

    def __post_init__(self) -> None:
        module, sep, function = self.entry.partition(':')
        if not (module and sep and function):
            raise ValueError(f"entry must look like 'package.module:function', got {self.entry!r}")
        if self.ipc_fd < 0:
            raise ValueError(f'ipc_fd must be an open fd of a connected socket, got {self.ipc_fd}')


SpawnFn = Callable[[SpawnRequest], Awaitable['ProcessHandle']]
"""A backend: ``await spawn(request)`` returns once the child is started."""
