"""An actor: a name, an identity, and (in a child) what keeps it serving.

:meth:`Actor.serve` answers the parent's channel (``_serving``) and the
channels peers open to it (``_discovery``), and ends on :class:`CancelActor`,
on the parent's hang-up (EOF), or on a byte on the host's cancel fd (a
forwarded SIGINT/SIGTERM or the lifeline).
"""
from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import TractorSubintError
from ..log import get_logger
from ..spawn import SpawnTree, cancel_on_forwarded_signal, current_tree, describe_cancel_byte, open_tree
from ._bootspec import Aid, BootSpec, Uid
from ._channel import Channel
from ._msgs import CancelAck
from ._registry import Registry
from ._serving import ChannelServer

if TYPE_CHECKING:
    from ._discovery import AcceptPeer
    from ._portal import Portal

log = get_logger('runtime')

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class ChannelLost(TractorSubintError, RuntimeError):
    """This actor's end of its channel was closed under it (by user code):
    it cannot answer its parent any more, so it ends."""


class Actor:
    """One actor of the tree. :func:`current_actor` returns the running one."""

    def __init__(self, name: str, uid: Uid, spec: BootSpec | None = None) -> None:
        self.name = name
        self.uid = uid
        self.spec = spec
        self._owned_tree: SpawnTree | None = None
        self.stopped_by: ChannelServer | None = None
        """The channel whose other end asked this actor to stop, if one did."""
        self.service_nursery: trio.Nursery | None = None
        """Where this actor runs what serves it as a whole (peer channels,
        their receive loops), while it serves."""
        self.registry: Registry | None = None
        """(Root) The tree's registry: this actor is the registrar."""
        self._registrar: Portal | None = None
        self._registrar_lock = trio.Lock()
        self._root_services: tuple[trio.CancelScope, trio.Event] | None = None
        self.debug_mode = False
        """Whether this actor's tree runs in debug mode (README, "Debug mode")."""
        self.tty_lock = trio.Lock()
        """(Root) The tree's terminal: held by the actor in a REPL (debug mode)."""
        self.tty_owner: Uid | None = None
        self.undo_breakpoint_hook: Callable[[], None] | None = None
        self.holders = 0
        """(Root) The blocks holding this root actor: ``open_root_actor`` and
        nurseries; the last one to end ends it."""
        self.cancel_reason: str | None = None
        """Why this actor stopped serving, once it has."""
        self._serve_scope = trio.CancelScope()
        self._channel_lost: BaseException | None = None
        self._fatal: BaseException | None = None
        """A non-``Exception`` raised by a call (``SystemExit``, ...): it ends
        this actor, once the call has been answered with it."""
        self.parent_channel: Channel | None = None
        """The channel to the parent, while this (non-root) actor serves."""

    @classmethod
    def new_root(cls, name: str = 'root') -> Actor:
        """The root of a new tree; it opens the tree's spawn resources
        (:func:`tractor_subint.spawn.open_tree`) unless this process already
        belongs to a tree."""
        root = cls(name, (name, uuid.uuid4().hex))
        if current_tree() is None:
            root._owned_tree = open_tree()
        return root

    @property
    def is_root(self) -> bool:
        return self.spec is None

    @property
    def registrar_address(self) -> str:
        """Where the tree's registrar (its root actor) listens."""
        from ._discovery import address_for

        if self.spec is None:
            return address_for(self.uid)
        if self.spec.registrar is None:
            raise RuntimeError(f'{self!r} was spawned without a registrar address')
        return self.spec.registrar

    async def registrar_call(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn(**kwargs)`` (a function of ``_registry``) in the registrar:
        here if this is the root, else through a channel to the root that
        this actor keeps while it serves."""
        if self.is_root:
            result = fn(**kwargs)
            return await result if inspect.isawaitable(result) else result
        async with self._registrar_lock:
            if self._registrar is None:
                from ._discovery import connect

                self._registrar, _link = await connect(self.registrar_address)
        return await self._registrar.run(fn, **kwargs)

    async def start_root_services(self) -> None:
        """(Root) Become the registrar and answer peers, on a system task that
        lives until :meth:`stop_root_services` (a root may outlive the
        nursery that opened it: its siblings share it)."""
        from ._discovery import address_for, listen

        self.registry = Registry()
        self.registry.register(self.uid, address_for(self.uid))
        listener = await listen(self.uid)
        ready, done = trio.Event(), trio.Event()
        scope = trio.CancelScope()

        async def run() -> None:
            try:
                with scope:
                    async with trio.open_nursery() as services:
                        self.service_nursery = services
                        ready.set()
                        await self.answer_peers(listener)
            except Exception:
                log.exception('the root actor stopped answering peers')
            finally:
                self.service_nursery = None
                ready.set()
                done.set()

        self._root_services = (scope, done)
        trio.lowlevel.spawn_system_task(run, name=f'{self.name}:services')
        await ready.wait()

    async def stop_root_services(self) -> None:
        if self._root_services is None:
            return
        scope, done = self._root_services
        self._root_services = None
        scope.cancel()
        with trio.CancelScope(shield=True):
            await done.wait()

    @property
    def accept_addr(self) -> Any:
        """Where this actor listens for peers (a ``UDSAddress``)."""
        from ._discovery import UDSAddress

        return UDSAddress.of(self.uid, os.getpid())

    @property
    def aid(self) -> Aid:
        """This actor's identity: name, uuid and pid."""
        return Aid(self.name, self.uid[1], os.getpid())

    def __repr__(self) -> str:
        return f'<Actor {self.name}[{self.uid[1][:8]}] pid={os.getpid()}>'

    async def aclose(self) -> None:
        """Release what this actor keeps for spawning, even when cancelled:
        the root, the tree's forkserver; a child, also its process's warm
        pools (the process ends with the actor). A root's process keeps its
        pools for its next tree (they close themselves when idle, and at
        exit)."""
        owned, self._owned_tree = self._owned_tree, None
        tree = owned or (None if self.is_root else current_tree())
        if not self.is_root:
            # Imported here: an actor whose process never kept a pool loads none of it.
            from ..spawn import aclose_local_pools

            await aclose_local_pools()
        if tree is not None:
            await tree.aclose()

    # -- serving --------------------------------------------------------------

    async def serve(self, chan: Channel, cancel_fd: int, listener: trio.SocketListener | None = None) -> None:
        """Answer the parent until cancelled or the parent is gone; meanwhile
        answer the peers that connect to ``listener`` (``find_actor``).

        Raises :class:`ChannelLost` when answering failed because this
        actor's end of the channel broke under it (user code closed the
        socket): the actor cannot serve any more, and its exit must say so.
        """
        self.parent_channel = chan
        parent = ChannelServer(self, chan, parent=True)
        async with cancel_on_forwarded_signal(cancel_fd) as forwarded, trio.open_nursery() as services:
            self.service_nursery = services
            if listener is not None:
                services.start_soon(self.answer_peers, listener)
            with trio.CancelScope() as self._serve_scope:
                self.cancel_reason = await parent.serve()
            log.debug('stopping: %s', self.cancel_reason)
            services.cancel_scope.cancel()
            if self._registrar is not None:
                with trio.CancelScope(shield=True):
                    await self._registrar.channel.aclose()
        self.service_nursery = None
        if forwarded.signum is not None:
            self.cancel_reason = describe_cancel_byte(forwarded.signum)
            log.debug('stopping: %s', self.cancel_reason)
        if self._fatal is not None:
            raise self._fatal  # as itself: the actor's exit names it
        if self._channel_lost is not None:
            raise ChannelLost(
                f'actor {self.name!r} lost its channel to the parent while answering: '
                f'{self._channel_lost!r}'
            ) from self._channel_lost

    async def answer_peers(self, listener: trio.SocketListener) -> None:
        """Answer every peer that connects (each on a task of its own)."""
        from ._discovery import accept_peer

        assert self.service_nursery is not None
        async with listener:
            while True:
                stream = await listener.accept()
                self.service_nursery.start_soon(self._answer_peer, stream, accept_peer)

    async def _answer_peer(self, stream: trio.SocketStream, accept_peer: AcceptPeer) -> None:
        chan = await accept_peer(self, stream)
        if chan is None:
            return
        try:
            reason = await ChannelServer(self, chan, parent=False).serve()
            log.debug('done answering %s: %s', chan.aid, reason)
        finally:
            with trio.CancelScope(shield=True):
                await chan.aclose()

    async def stop_requested(self, server: ChannelServer) -> bool:
        """A :class:`CancelActor` came on ``server``'s channel (and was
        acknowledged): whether that ends this actor. The parent's does; a
        peer's does too, and the parent is told first (with a
        :class:`CancelAck` of its own) that the exit is an asked-for one. A
        root actor ends with its program: it refuses."""
        if self.is_root:
            log.warning('%s asked the root actor to stop: a root ends with its program', server.who)
            return False
        self.stopped_by = server
        if not server.parent and self.parent_channel is not None:
            self.cancel_reason = f'cancelled by {server.who}'
            try:
                await self.parent_channel.send(CancelAck())
            except _GONE:
                pass
            self._serve_scope.cancel()
        return True

    def lose_parent_channel(self, error: BaseException) -> None:
        """Sending to the parent failed: the parent is gone or our socket was
        closed under us. Either way nothing more can be answered: stop serving
        (the message loop may never see an end of its own)."""
        if isinstance(error, trio.ClosedResourceError) and self._channel_lost is None:
            self._channel_lost = error  # closed here, not by the parent
        self.cancel_reason = 'lost its channel to the parent'
        self._serve_scope.cancel()

    def end_by(self, exc: BaseException) -> None:
        """A call raised ``exc``, a ``BaseException`` that ends the actor."""
        if self._fatal is None:
            self._fatal = exc
        self.cancel_reason = f'a call raised {type(exc).__name__}'
        self._serve_scope.cancel()
