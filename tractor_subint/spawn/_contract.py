"""What every spawn backend takes and gives back.

``spawn/`` knows nothing about actors, portals or messages: a backend is told
"start a child that runs ``entry(boot_payload)``" and returns a handle the
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
    """``'package.module:function'``: the child's boot function, called with
    ``boot_payload``. It must run the same in a main interpreter or in a
    subinterpreter."""
    boot_payload: bytes = b''
    """Opaque to ``spawn/``; crosses process and interpreter boundaries as bytes."""
    keep_fds: tuple[int, ...] = ()
    """fds the child must inherit (e.g. a pre-connected socket)."""
    stdio: StdioPolicy | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables for the child."""


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
