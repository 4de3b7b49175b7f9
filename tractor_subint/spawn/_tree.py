"""The spawn resources that every process of one actor tree shares: the
tree's forkserver.

A process that holds a subinterpreter
cannot fork (``ai/conc-anal/fork_with_live_subinterpreter.md``), so when a
subinterpreter-hosted actor spawns a forking backend's child, a forkserver
forks it instead: one per tree, owned by the tree's root.

It must cost nothing to a tree that never needs it (a flat
``subint_forkserver`` tree never does), yet its address must be known to
every process of the tree before any of them needs it. Both hold with socket
activation: the root binds the forkserver's listening socket when it opens
the tree, every child inherits the address, and the server process is
started only when the first request connects (the request waits in the
socket's backlog meanwhile; see
:class:`~tractor_subint.spawn.forkserver.OnDemandForkserver`).

The current tree is per interpreter: the root opens it
(:func:`open_tree`), a child's shell sets the inherited one in the
interpreter that runs the child's entry (:func:`inherit_tree`).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

# trio is imported by the functions that run under it: the forkserver process
# imports this module (through the child shell) and stays trio-free.

if TYPE_CHECKING:
    from .forkserver._owner import OnDemandForkserver

_current: SpawnTree | None = None


class SpawnTree:
    """One actor tree's spawn resources, as this interpreter sees them."""

    def __init__(self, forkserver_address: str | None, owned: OnDemandForkserver | None = None) -> None:
        self._address = forkserver_address
        self.forkserver: OnDemandForkserver | None = owned
        """The tree's forkserver, in the root that owns it (None elsewhere,
        and once closed)."""

    @property
    def forkserver_address(self) -> str | None:
        """Where the tree's forkserver listens (None: this tree has none)."""
        return self._address

    @property
    def owns_forkserver(self) -> bool:
        """Whether this process is the tree's root, which owns the forkserver."""
        return self.forkserver is not None

    @property
    def forkserver_pid(self) -> int | None:
        """The forkserver process's pid once started (root side only)."""
        return None if self.forkserver is None else self.forkserver.pid

    def __repr__(self) -> str:
        role = 'root' if self.forkserver is not None else 'inherited'
        return f'<SpawnTree {role} forkserver={self._address!r}>'

    def close(self) -> None:
        """Leave the tree; the root also stops the forkserver. Blocking;
        idempotent."""
        global _current
        if _current is self:
            _current = None
        owned, self.forkserver = self.forkserver, None
        if owned is not None:
            owned.close()

    async def aclose(self) -> None:
        """:meth:`close` on a worker thread, so the event loop does not wait
        on it. Shielded."""
        import trio

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.close)

    async def __aenter__(self) -> SpawnTree:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def current_tree() -> SpawnTree | None:
    """The spawn tree this interpreter belongs to, if any."""
    return _current


def current_forkserver_address() -> str | None:
    """The current tree's forkserver address, which a new child inherits."""
    return None if _current is None else _current.forkserver_address


def open_tree() -> SpawnTree:
    """Open a new tree with this process as its root, and make it current.

    Binds the tree's forkserver address (no process is started). Close it
    with :meth:`SpawnTree.aclose` (or ``async with``) once the tree is done.
    """
    global _current
    if _current is not None:
        raise RuntimeError(f'this interpreter already belongs to a spawn tree: {_current!r}')
    from .forkserver._owner import OnDemandForkserver

    owned = OnDemandForkserver()
    _current = SpawnTree(owned.address, owned)
    return _current


def _forget_tree_after_fork() -> None:
    # A child forked by other code (multiprocessing's 'fork', os.fork) is in
    # no tree; ours are told which one by their shell (inherit_tree).
    global _current
    _current = None


os.register_at_fork(after_in_child=_forget_tree_after_fork)


def inherit_tree(forkserver_address: str | None) -> None:
    """In a child's entry interpreter: belong to the parent's tree.

    Replaces whatever a fork copied from the parent (its tree is not ours to
    close).
    """
    global _current
    _current = SpawnTree(forkserver_address) if forkserver_address is not None else None
