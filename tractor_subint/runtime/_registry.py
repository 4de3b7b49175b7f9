"""The registry of a tree's actors, kept by its root actor (the registrar).

:class:`Registry` maps names to the actors of that name and where they
listen. The module-level functions are what other actors call in the root
(``portal.run``, through ``Actor.registrar_call``); in the root itself
they are called directly.
"""
from __future__ import annotations

from collections.abc import Sequence

import trio

from ._bootspec import Uid
from ._state import current_actor


class Registry:
    """Names to ``{uid: address}``, and who waits for a name to appear."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[Uid, str]] = {}
        self._changed = trio.Event()

    def register(self, uid: Uid, address: str) -> None:
        self._by_name.setdefault(uid[0], {})[uid] = address
        self._changed.set()
        self._changed = trio.Event()

    def unregister(self, uid: Uid) -> None:
        entries = self._by_name.get(uid[0], {})
        entries.pop(uid, None)
        if not entries:
            self._by_name.pop(uid[0], None)

    def find(self, name: str) -> list[tuple[Uid, str]]:
        """Every actor named ``name``, oldest first, with its address."""
        return list(self._by_name.get(name, {}).items())

    async def wait_for(self, name: str) -> tuple[Uid, str]:
        """The first actor named ``name``, once there is one."""
        while not (found := self.find(name)):
            await self._changed.wait()
        return found[0]

    def names(self) -> dict[str, int]:
        """How many actors of each name are registered."""
        return {name: len(entries) for name, entries in self._by_name.items()}


def _here() -> Registry:
    registry = current_actor().registry
    if registry is None:
        raise RuntimeError(f'{current_actor()!r} is not the registrar: the root actor is')
    return registry


def _uid(value: Sequence[str]) -> Uid:
    name, uuid_hex = value
    return (str(name), str(uuid_hex))


# -- called in the root, by any actor of its tree -----------------------------------

def register(uid: Sequence[str], address: str) -> None:
    _here().register(_uid(uid), address)


def unregister(uid: Sequence[str]) -> None:
    _here().unregister(_uid(uid))


def find(name: str) -> list[tuple[Uid, str]]:
    return _here().find(name)


async def wait_for(name: str) -> tuple[Uid, str]:
    return await _here().wait_for(name)


def names() -> dict[str, int]:
    return _here().names()
