"""What every spawn backend is given, and what its child sees.

``spawn/`` knows nothing about actors, portals or messages: a backend is told
"start a child that runs ``entry(boot_payload, ipc_fd, cancel_fd)``" and returns a
:class:`~tractor_subint.spawn.ProcessHandle` the runtime can supervise. The runtime does the
handshake, supervision and the kill ladder once, for every backend.

The child's side of the contract (its shell gets a :class:`ChildSpec`):

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
from typing import TYPE_CHECKING, Any, Literal, get_args

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


HostKind = Literal['main', 'subint']
"""Where a child's shell runs its entry: its main interpreter, or a subinterpreter."""
HOST_KINDS: tuple[HostKind, ...] = get_args(HostKind)


@dataclass(frozen=True)
class ChildSpec:
    """What a child's shell needs: plain values only, so that it crosses
    every boundary a spawn has (a fork, the forkserver's JSON frames, an
    exec's arguments, a subinterpreter)."""

    name: str
    entry: str
    """``'package.module:function'``, called as ``function(payload, ipc_fd, cancel_fd)``."""
    payload: bytes
    ipc_fd: int
    host: HostKind
    tree: str | None = None
    """The address of the spawn tree's forkserver, inherited by the entry's interpreter."""
    env: dict[str, str] = field(default_factory=dict)
    """Set in the child's environment before its entry runs."""
    sys_path: list[str] | None = None
    """The ``sys.path`` to import the entry with (None: keep this process's,
    as a direct fork does); a spawner that does not fork itself sends its own."""

    def __post_init__(self) -> None:
        if self.host not in HOST_KINDS:
            raise ValueError(f'host must be one of {HOST_KINDS}, got {self.host!r}')
        module, sep, function = self.entry.partition(':')
        if not (module and sep and function):
            raise ValueError(f"entry must look like 'package.module:function', got {self.entry!r}")

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (``ipc_fd`` travels separately, as an fd)."""
        return {
            'name': self.name, 'entry': self.entry, 'payload': self.payload.hex(),
            'host': self.host, 'tree': self.tree, 'env': dict(self.env),
            'sys_path': self.sys_path,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], ipc_fd: int) -> ChildSpec:
        """Validate what :meth:`to_json` made; ``ValueError`` says what is wrong."""
        name, entry, tree, env = obj.get('name'), obj.get('entry'), obj.get('tree'), obj.get('env', {})
        if not isinstance(name, str) or not isinstance(entry, str):
            raise ValueError(f'name and entry must be strings, got {name!r} and {entry!r}')
        if tree is not None and not isinstance(tree, str):
            raise ValueError(f'tree must be a string or null, got {tree!r}')
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ValueError('env must map strings to strings')
        sys_path = obj.get('sys_path')
        if sys_path is not None and not (
            isinstance(sys_path, list) and all(isinstance(p, str) for p in sys_path)
        ):
            raise ValueError('sys_path must be a list of strings or null')
        try:
            payload = bytes.fromhex(obj.get('payload', ''))
        except (TypeError, ValueError) as exc:
            raise ValueError(f'payload is not hex: {exc}') from None
        return cls(name, entry, payload, ipc_fd, obj.get('host'), tree, env, sys_path)  # type: ignore[arg-type]


SpawnFn = Callable[[SpawnRequest], Awaitable['ProcessHandle']]
"""A backend: ``await spawn(request)`` returns once the child is started."""
