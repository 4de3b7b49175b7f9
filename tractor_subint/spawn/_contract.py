"""What every spawn backend takes and gives back.

``spawn/`` knows nothing about actors, portals or messages: a backend is told
"start a child that runs ``entry(boot_payload, ipc_fd, cancel_fd)``" and returns a handle the
runtime can supervise. The runtime does the handshake, supervision and the
kill ladder once, for every backend.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ._prelude import StdioPolicy


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
    forkserver: str | None = None
    """Address of the tree's forkserver, for backends that cannot fork here."""

    def __post_init__(self) -> None:
        module, sep, function = self.entry.partition(':')
        if not (module and sep and function):
            raise ValueError(f"entry must look like 'package.module:function', got {self.entry!r}")
        if self.ipc_fd < 0:
            raise ValueError(f'ipc_fd must be an open fd of a connected socket, got {self.ipc_fd}')


class ProcessHandle(Protocol):
    """What the runtime needs to supervise a child (``trio.Process`` fits)."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


SpawnFn = Callable[[SpawnRequest], Awaitable[ProcessHandle]]
"""A backend: ``await spawn(request)`` returns once the child is started."""
