"""An actor: a name, an identity, and (in a child) the loop serving its parent.

The child side of the protocol lives here: :meth:`Actor.serve` answers
:class:`Call` messages by running the named function as a trio task, and
ends on :class:`CancelActor`, on the parent's hang-up (EOF), or on a byte on
the host's cancel fd (a forwarded SIGINT/SIGTERM or the lifeline).
"""
from __future__ import annotations

import inspect
import os
import signal
import uuid
from contextlib import aclosing
from typing import TYPE_CHECKING

import trio

from ..spawn._signal_forwarding import LIFELINE_BYTE, cancel_on_forwarded_signal
from ._channel import Channel
from ._errors import box_error
from ._log import log
from ._msgs import (
    BootSpec, Call, CancelAck, CancelActor, CancelCall, Failed, Return, StreamEnd, Uid, Yield,
)
from ._targets import resolve

if TYPE_CHECKING:
    from ..spawn._forkserver import Forkserver

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


def _describe_host_byte(byte: int) -> str:
    if byte == LIFELINE_BYTE:
        return 'parent gone (lifeline hung up)'
    try:
        return f'{signal.Signals(byte).name} forwarded by the host'
    except ValueError:
        return f'host cancel byte {byte}'


class Actor:
    """One actor of the tree. :func:`current_actor` returns the running one."""

    def __init__(self, name: str, uid: Uid, spec: BootSpec | None = None) -> None:
        self.name = name
        self.uid = uid
        self.spec = spec
        self.forkserver_address: str | None = spec.forkserver if spec else None
        self._owned_forkserver: Forkserver | None = None
        self._calls: dict[int, trio.CancelScope] = {}
        self.open_nurseries = 0
        """Actor nurseries open in this actor (the root actor ends with the last)."""
        self.cancel_reason: str | None = None
        """Why this actor stopped serving, once it has."""

    @classmethod
    def new_root(cls) -> Actor:
        return cls('root', ('root', uuid.uuid4().hex))

    @property
    def is_root(self) -> bool:
        return self.spec is None

    def __repr__(self) -> str:
        return f'<Actor {self.name}[{self.uid[1][:8]}] pid={os.getpid()}>'

    def ensure_forkserver(self) -> str:
        """The tree's forkserver address; start one owned by this actor if
        none was inherited."""
        if self.forkserver_address is None:
            from ..spawn._forkserver import start_forkserver

            self._owned_forkserver = start_forkserver()
            self.forkserver_address = self._owned_forkserver.address
        return self.forkserver_address

    async def aclose(self) -> None:
        """Release what this actor owns (its forkserver, if it started one),
        even when cancelled; the forkserver is reaped on a worker thread so
        the event loop does not wait on it."""
        forkserver, self._owned_forkserver = self._owned_forkserver, None
        if forkserver is None:
            return
        self.forkserver_address = self.spec.forkserver if self.spec else None
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(forkserver.close)

    # -- child side ---------------------------------------------------------

    async def serve(self, chan: Channel, cancel_fd: int) -> None:
        """Answer the parent until cancelled or the parent is gone."""
        async with cancel_on_forwarded_signal(cancel_fd) as forwarded:
            async with trio.open_nursery() as rpc:
                self.cancel_reason = await self._message_loop(chan, rpc)
                log.debug('stopping: %s', self.cancel_reason)
                rpc.cancel_scope.cancel()
        if forwarded.signum is not None:
            self.cancel_reason = _describe_host_byte(forwarded.signum)
            log.debug('stopping: %s', self.cancel_reason)

    async def _message_loop(self, chan: Channel, rpc: trio.Nursery) -> str:
        try:
            async for msg in chan:
                if isinstance(msg, Call):
                    rpc.start_soon(self._run_call, chan, msg, name=f'rpc:{msg.qualname}')
                elif isinstance(msg, CancelCall):
                    scope = self._calls.get(msg.cid)
                    if scope is not None:
                        scope.cancel()
                elif isinstance(msg, CancelActor):
                    try:
                        await chan.send(CancelAck())
                    except _GONE:
                        pass
                    return 'cancelled by parent'
        except trio.BrokenResourceError:
            pass
        return 'parent hung up'

    async def _run_call(self, chan: Channel, msg: Call) -> None:
        assert self.spec is not None
        with trio.CancelScope() as scope:
            self._calls[msg.cid] = scope
            try:
                fn = resolve(self.spec, msg.module, msg.qualname)
                if msg.stream:
                    await self._stream_results(chan, msg, fn)
                else:
                    result = fn(**msg.kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                    await chan.send(Return(msg.cid, result))
            except _GONE:
                pass  # the parent is gone: nobody to answer
            except Exception as exc:
                try:
                    await chan.send(Failed(msg.cid, box_error(exc, self.uid)))
                except _GONE:
                    pass
            finally:
                self._calls.pop(msg.cid, None)

    async def _stream_results(self, chan: Channel, msg: Call, fn: object) -> None:
        agen = fn(**msg.kwargs)  # type: ignore[operator]
        if not inspect.isasyncgen(agen):
            raise TypeError(
                f'{msg.module}.{msg.qualname} is not an async generator function: '
                f'open_stream_from() needs one'
            )
        async with aclosing(agen):
            async for value in agen:
                await chan.send(Yield(msg.cid, value))
        await chan.send(StreamEnd(msg.cid))
