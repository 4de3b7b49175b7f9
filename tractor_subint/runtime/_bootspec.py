"""The boot payload: everything a child needs to become an actor.

It crosses every boundary a spawn has (exec, fork, the forkserver, a
subinterpreter), so it is plain JSON, decodable by any interpreter with the
standard library alone: an isolated subinterpreter, where msgspec cannot
load, still learns from it which codec its channel speaks.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

Uid = tuple[str, str]
"""An actor's identity: ``(name, uuid hex)``."""


@dataclass(frozen=True)
class Aid:
    """An actor's identity as tractor spells it (``portal.chan.aid``)."""

    name: str
    uuid: str
    pid: int

    @property
    def uid(self) -> Uid:
        return (self.name, self.uuid)

    def reprol(self) -> str:
        """One line naming the actor: ``name[uuid8]@pid``."""
        return f'{self.name}[{self.uuid[:8]}]@{self.pid}'


@dataclass(frozen=True)
class BootSpec:
    """Everything a child needs to become an actor."""

    name: str
    uid: Uid
    enable_modules: list[str]
    spawn_method: str
    """The default spawn method of the child's own nurseries."""
    sys_path: list[str]
    main_path: str | None = None
    """The parent's ``__main__.__file__``: where ``__main__`` RPC targets live."""
    main_module: str | None = None
    """The parent's ``__main__.__spec__.name`` when it was run with ``-m``."""
    codec: str = 'msgpack'
    """The codec of the child's channel to its parent."""
    log_level: str | None = None
    """The level of the parent's console log (``tractor_subint.log``), which
    the child's then prints at; None leaves the child's as its environment
    sets it."""
    max_frame: int | None = None
    """The frame limit of that channel, in bytes (None: the default,
    ``_channel.MAX_FRAME``); both ends use the same."""
    debug_mode: bool = False
    """Whether the actor runs in debug mode (README, "Debug mode")."""
    registrar: str | None = None
    """The address of the tree's registrar (its root actor), for
    ``find_actor`` and its kin."""

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(',', ':')).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> BootSpec:
        """Decode :meth:`to_bytes`; :class:`ValueError` if it is not a boot spec."""
        try:
            fields = json.loads(data)
            name, uid_hex = fields.pop('uid')
            return cls(uid=(str(name), str(uid_hex)), **fields)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f'not a boot spec: {exc}') from None
