"""Actors finding each other: every actor listens for peers, the root keeps
the registry.

Addresses: each actor listens on a Unix socket in Linux's abstract
namespace named after its uuid (:func:`address_for`): nothing on disk to
remove, and the name goes away with the socket. Only processes of the same
user may connect (the peer's credentials are checked on accept).

Handshake: each end sends a :class:`~._msgs.Hello` (who it is, the codecs
it speaks) in marshal, which every interpreter reads; both then speak
msgpack if both can, else marshal (an isolated subinterpreter's actor).

The connecting end gets a :class:`Portal` (its :class:`PeerLink` stands in
for the supervisor a child's portal has); the listening end answers the
channel like its parent's (``_serving``).

The registry lives in the root actor (``_registry``): a parent registers
each child once it is ready and unregisters it once it is reaped, so a
name is found as soon as ``start_actor()`` returns.
"""
from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .._exceptions import ProtocolError
from ..log import get_logger
from ._bootspec import Aid, Uid
from ._calls import Calls
from ._channel import Channel
from ._codec import UndecodableValue, codec_for_channel, get_codec
from ._msgs import CancelAck, CancelActor, Hello
from ._portal import Portal
from ._state import current_actor

if TYPE_CHECKING:
    from ._actor import Actor

log = get_logger('runtime')

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)

HANDSHAKE_TIMEOUT = 5.0
"""Seconds each end of a new peer channel waits for the other's hello."""

PEER_CANCEL_ACK_TIMEOUT = 0.5
"""Seconds ``cancel_actor()`` on a found actor's portal waits for the ack."""

AcceptPeer = Callable[['Actor', trio.SocketStream], Awaitable[Channel | None]]


def address_for(uid: Uid) -> str:
    """Where the actor ``uid`` listens: an abstract Unix socket name."""
    return f'\0tractor_subint:{uid[1]}'


def describe_address(address: str) -> str:
    return '@' + address[1:] if address.startswith('\0') else address


TRANSPORTS = ('uds',)
"""What actors here talk over (tractor's ``enable_transports`` keys)."""


def check_transports(enable_transports: Sequence[str] | None) -> None:
    """Accept tractor's ``enable_transports`` when it asks for what actors
    here speak: Unix sockets (``'uds'``)."""
    if enable_transports is None:
        return
    if isinstance(enable_transports, str):
        raise TypeError(f'enable_transports is a list of transport keys, not {enable_transports!r}')
    unknown = [key for key in enable_transports if key not in TRANSPORTS]
    if unknown:
        raise ValueError(
            f'enable_transports={list(enable_transports)!r}: actors here speak only over Unix '
            f'sockets (socket pairs to their parents, abstract-namespace sockets to their '
            f"peers): {', '.join(repr(t) for t in TRANSPORTS)}"
        )


@dataclass(frozen=True)
class UDSAddress:
    """Where an actor listens, as tractor describes a Unix-socket address."""

    sockpath: str
    """The listening socket's name (``@...``: Linux's abstract namespace)."""
    maybe_pid: int | None = None
    proto_key: str = 'uds'

    @classmethod
    def of(cls, uid: Uid, pid: int | None) -> UDSAddress:
        return cls(describe_address(address_for(uid)), pid)


async def listen(uid: Uid) -> trio.SocketListener:
    """Bind and listen on :func:`address_for` ``uid``.

    Bound here, not with trio's ``bind``: trio takes a ``str`` Unix address
    that starts with NUL for a filesystem path and binds it on a worker
    thread, which in a freshly forked actor means starting one (a few ms of
    every spawn, on the way to ``Ready``). An abstract name touches no
    filesystem: binding it never blocks.
    """
    await trio.lowlevel.checkpoint()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.bind(address_for(uid))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def _codecs_spoken() -> list[str]:
    return ['msgpack', 'marshal'] if codec_for_channel('msgpack') == 'msgpack' else ['marshal']


async def _handshake(actor: Actor, chan: Channel) -> Channel:
    """Exchange hellos on ``chan`` (speaking marshal, which every
    interpreter reads); then it speaks the codec both ends can, and knows
    who is at the other end."""
    spoken = _codecs_spoken()
    with trio.fail_after(HANDSHAKE_TIMEOUT):
        await chan.send(Hello(actor.uid, os.getpid(), spoken))
        hello = await chan.recv()
    if not isinstance(hello, Hello):
        raise ProtocolError(f'a peer channel starts with a Hello, not a {type(hello).__name__}')
    chan.use_codec(get_codec('msgpack' if 'msgpack' in hello.codecs and 'msgpack' in spoken else 'marshal'))
    chan.aid = Aid(hello.uid[0], hello.uid[1], hello.pid)
    return chan


def _same_user(stream: trio.SocketStream) -> bool:
    creds = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize('3i'))
    _pid, uid, _gid = struct.unpack('3i', creds)
    return bool(uid == os.getuid())


async def accept_peer(actor: Actor, stream: trio.SocketStream) -> Channel | None:
    """The channel of a peer that connected to ``actor``, handshaken; None
    (the connection closed) for another user's process or a failed hello."""
    chan: Channel | None = None
    try:
        if not _same_user(stream):
            log.warning('refused a connection from another user\'s process')
        else:
            chan = Channel.from_stream(stream, get_codec('marshal'))
            return await _handshake(actor, chan)
    except (trio.TooSlowError, trio.EndOfChannel, ProtocolError, *_GONE, OSError) as exc:
        log.warning('a peer connection failed its handshake: %r', exc)
    with trio.CancelScope(shield=True):
        await (stream.aclose() if chan is None else chan.aclose())
    return None


class PeerLink:
    """What a :class:`Portal` to a found actor (not a child) knows of it:
    its channel's replies and whether it hung up. Stands in for the
    supervisor of a child's portal (``_portal.ChildLink``)."""

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.calls = Calls()
        self.cancel_requested = False
        self.cancelled_by: str | None = None
        self._acked = trio.Event()

    @property
    def pid(self) -> int:
        return self.chan.aid.pid if self.chan.aid is not None else -1

    @property
    def exit_status(self) -> None:
        return None

    def gone_reason(self) -> str:
        return 'closed its channel to this actor while a call was pending'

    async def wait_exited(self) -> None:
        await self.calls.closed.wait()

    async def stop(self, by: str = 'this caller') -> bool:
        """Ask the actor to stop; whether it acknowledged. (Its parent, not
        this actor, ends it if it does not.)"""
        if not self.cancel_requested:
            self.cancel_requested = True
            self.cancelled_by = by
        with trio.CancelScope(shield=True):
            try:
                await self.chan.send(CancelActor())
            except _GONE:
                return self._acked.is_set()
            with trio.move_on_after(PEER_CANCEL_ACK_TIMEOUT):
                await self._acked.wait()
        return self._acked.is_set()

    async def result(self) -> Any:
        raise RuntimeError(
            'this portal reaches an actor found by name: it has no run_in_actor() result; '
            'use portal.run()'
        )

    async def receive_loop(self) -> None:
        """Feed replies to their calls until the channel ends."""
        try:
            while True:
                try:
                    msg = await self.chan.recv()
                except UndecodableValue as exc:
                    self.calls.fail_undecodable(exc, repr(self.chan))
                    continue
                except trio.EndOfChannel:
                    break
                if isinstance(msg, CancelAck):
                    self._acked.set()
                else:
                    self.calls.deliver(msg)
        except (*_GONE, ProtocolError) as exc:
            log.debug('peer channel %r ended: %r', self.chan, exc)
        finally:
            self.calls.close()


async def connect(address: str) -> tuple[Portal, PeerLink]:
    """A portal to the actor listening at ``address``, whose replies the
    current actor's service nursery feeds. Close it with its channel."""
    actor = current_actor()
    services = actor.service_nursery
    if services is None:
        raise RuntimeError(f'{actor!r} is not serving: it cannot reach other actors now')
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    chan = Channel.from_stream(trio.SocketStream(sock), get_codec('marshal'))
    try:
        await _handshake(actor, chan)
    except BaseException:
        with trio.CancelScope(shield=True):
            await chan.aclose()
        raise
    assert chan.aid is not None
    link = PeerLink(chan)
    portal = Portal(chan.aid.name, chan.aid.uid, chan, link.calls, link, spawn_time=0.0)
    services.start_soon(link.receive_loop, name=f'peer:{chan.aid.name}')
    return portal, link


@asynccontextmanager
async def open_portal(address: str) -> AsyncIterator[Portal]:
    """:func:`connect`, closed when the block ends."""
    portal, _link = await connect(address)
    try:
        yield portal
    finally:
        with trio.CancelScope(shield=True):
            await portal.channel.aclose()


# -- the public API --------------------------------------------------------------------

@asynccontextmanager
async def find_actor(
    name: str, *, only_first: bool = True, raise_on_none: bool = False,
) -> AsyncIterator[Any]:
    """A portal to an actor of the tree named ``name``, or None if none is
    registered (``raise_on_none``: :class:`RuntimeError` instead). With
    ``only_first=False``, a list of portals to every actor of that name."""
    from . import _registry

    found = await _registry_lookup(_registry.find, name=name)
    portals: list[Portal] = []
    try:
        for _uid, address in found:
            try:
                portal, _link = await connect(address)
            except OSError as exc:  # gone since it registered
                log.debug('actor %s registered at %r does not answer: %r', name, address, exc)
                continue
            portals.append(portal)
            if only_first:
                break
        if not portals and raise_on_none:
            raise RuntimeError(f'no actor named {name!r} is registered in this tree')
        if only_first:
            yield portals[0] if portals else None
        else:
            yield portals
    finally:
        with trio.CancelScope(shield=True):
            for portal in portals:
                await portal.channel.aclose()


@asynccontextmanager
async def wait_for_actor(name: str) -> AsyncIterator[Portal]:
    """A portal to the actor named ``name``, once one is registered (now, or
    when one is spawned)."""
    from . import _registry

    _uid, address = await _registry_lookup(_registry.wait_for, name=name)
    async with open_portal(address) as portal:
        yield portal


@asynccontextmanager
async def get_registry() -> AsyncIterator[Portal]:
    """A portal to the tree's registrar: its root actor (from the root
    itself too)."""
    async with open_portal(current_actor().registrar_address) as portal:
        yield portal


async def _registry_lookup(fn: Callable[..., Any], **kwargs: Any) -> Any:
    return await current_actor().registrar_call(fn, **kwargs)
