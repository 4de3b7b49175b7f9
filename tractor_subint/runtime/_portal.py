"""A portal: the parent's handle on one child actor.

Every message from the child goes through one receive loop (run by the
nursery's supervisor for that child), which routes it by call id to the
waiting :meth:`Portal.run`, stream, or result collector. When the channel
ends, every pending call fails at once: nothing waits on a dead actor.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from ._channel import Channel
from ._errors import ActorFailure, RemoteActorError
from ._msgs import (
    Call, CancelAck, CancelCall, Failed, Msg, Return, StreamEnd, Uid, Yield,
)
from ._targets import func_ref

if TYPE_CHECKING:
    from ..spawn._contract import ProcessHandle
    from ._supervise import ChildActor

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


class Portal:
    """Call functions in a child actor, stream from it, cancel it."""

    def __init__(
        self,
        name: str,
        uid: Uid,
        channel: Channel,
        process: ProcessHandle,
        spawn_time: float,
    ) -> None:
        self.name = name
        self.uid = uid
        self.channel = channel
        self.process = process
        self.spawn_time = spawn_time
        """Seconds from the spawn request until the child said it was ready."""
        self._cids = itertools.count(1)
        self._waiters: dict[int, trio.MemorySendChannel[Msg]] = {}
        self._cancel_ack = trio.Event()
        self._closed = trio.Event()
        self._child: ChildActor | None = None
        self._result_waiter: trio.MemoryReceiveChannel[Msg] | None = None
        self._result: tuple[bool, Any] | None = None
        self._result_ready = trio.Event()

    def __repr__(self) -> str:
        return f'<Portal {self.name}[{self.uid[1][:8]}] pid={self.process.pid}>'

    @property
    def pid(self) -> int:
        return self.process.pid

    # -- the receive loop ---------------------------------------------------

    async def _receive_loop(self) -> None:
        try:
            async for msg in self.channel:
                if isinstance(msg, CancelAck):
                    self._cancel_ack.set()
                    continue
                waiter = self._waiters.get(getattr(msg, 'cid', -1))
                if waiter is not None:
                    try:
                        waiter.send_nowait(msg)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass  # the caller gave up on this call
        except trio.BrokenResourceError:
            pass
        finally:
            self._closed.set()
            for waiter in self._waiters.values():
                waiter.close()

    def _gone_error(self) -> ActorFailure:
        child = self._child
        status = child.exit_status if child is not None else None
        return ActorFailure(self.name, 'went away while a call was pending', status)

    async def _next(self, replies: trio.MemoryReceiveChannel[Msg]) -> Msg:
        try:
            return await replies.receive()
        except trio.EndOfChannel:
            if self._child is not None:
                # Give the supervisor a moment to reap, for a useful status.
                with trio.move_on_after(1.0):
                    await self._child.process_exited.wait()
            raise self._gone_error() from None

    def _register_call(self) -> tuple[int, trio.MemorySendChannel[Msg], trio.MemoryReceiveChannel[Msg]]:
        """A new call id and the channel its replies will be routed to."""
        cid = next(self._cids)
        send, replies = trio.open_memory_channel[Msg](math.inf)
        self._waiters[cid] = send
        return cid, send, replies

    async def _send_call(self, cid: int, ref: tuple[str, str], kwargs: dict[str, Any], *, stream: bool) -> None:
        if self._closed.is_set():
            raise self._gone_error()
        try:
            await self.channel.send(Call(cid, *ref, kwargs, stream))
        except _GONE:
            raise self._gone_error() from None

    @asynccontextmanager
    async def _open_call(
        self, fn: Callable[..., object], kwargs: dict[str, Any], *, stream: bool
    ) -> AsyncIterator[tuple[int, trio.MemoryReceiveChannel[Msg]]]:
        ref = func_ref(fn)
        cid, send, replies = self._register_call()
        try:
            await self._send_call(cid, ref, kwargs, stream=stream)
            yield cid, replies
        finally:
            self._waiters.pop(cid, None)
            send.close()

    # -- public API ---------------------------------------------------------

    async def run(self, fn: Callable[..., object], **kwargs: Any) -> Any:
        """Call ``fn(**kwargs)`` in the actor and return its result.

        ``fn`` is sent by reference (module and name): its module must be
        enabled in the actor or importable there. A remote exception is
        raised here as :class:`RemoteActorError`.
        """
        async with self._open_call(fn, kwargs, stream=False) as (_cid, replies):
            return _unwrap(await self._next(replies))

    async def _start_result_call(self, ref: tuple[str, str], kwargs: dict[str, Any]) -> None:
        """For ``run_in_actor``: send the call now, collect it later."""
        cid, _send, self._result_waiter = self._register_call()
        await self._send_call(cid, ref, kwargs, stream=False)

    async def _collect_result(self) -> tuple[bool, Any]:
        """Wait for the ``run_in_actor`` reply; ``(ok, value or error)``."""
        assert self._result_waiter is not None
        try:
            msg = await self._next(self._result_waiter)
            self._result = (True, _unwrap(msg))
        except (RemoteActorError, ActorFailure) as exc:
            self._result = (False, exc)
        self._result_ready.set()
        return self._result

    async def wait_for_result(self) -> Any:
        """The result of the function given to ``run_in_actor`` (raising its
        error); also works after the nursery has exited."""
        if self._result_waiter is None:
            raise RuntimeError(
                f'{self!r} was started with start_actor(): it has no result to wait for; '
                f'use portal.run()'
            )
        await self._result_ready.wait()
        assert self._result is not None
        ok, value = self._result
        if ok:
            return value
        raise value

    @asynccontextmanager
    async def open_stream_from(
        self, fn: Callable[..., object], **kwargs: Any
    ) -> AsyncIterator[MsgStream]:
        """Run the async generator function ``fn(**kwargs)`` in the actor and
        yield a stream of what it yields (``async for``). Leaving the block
        early cancels the remote generator."""
        async with self._open_call(fn, kwargs, stream=True) as (cid, replies):
            stream = MsgStream(self, replies)
            try:
                yield stream
            finally:
                if not stream.finished and not self._closed.is_set():
                    with trio.CancelScope(shield=True):
                        try:
                            await self.channel.send(CancelCall(cid))
                        except _GONE:
                            pass

    async def cancel_actor(self) -> bool:
        """Cancel the actor: ask it to stop, then terminate and kill it if it
        does not go (bounds in ``_supervise``). True if it acknowledged the
        request; either way it is gone when this returns."""
        if self._child is None:
            raise RuntimeError(f'{self!r} is not supervised by a nursery')
        return await self._child.stop()


class MsgStream:
    """The receiving end of :meth:`Portal.open_stream_from`."""

    def __init__(self, portal: Portal, replies: trio.MemoryReceiveChannel[Msg]) -> None:
        self._portal = portal
        self._replies = replies
        self.finished = False

    def __aiter__(self) -> MsgStream:
        return self

    async def __anext__(self) -> Any:
        if self.finished:
            raise StopAsyncIteration
        msg = await self._portal._next(self._replies)
        if isinstance(msg, Yield):
            return msg.value
        self.finished = True
        if isinstance(msg, StreamEnd):
            raise StopAsyncIteration
        _unwrap(msg)
        raise StopAsyncIteration


def _unwrap(msg: Msg) -> Any:
    if isinstance(msg, Return):
        return msg.value
    if isinstance(msg, Failed):
        raise RemoteActorError(msg.error)
    raise RuntimeError(f'unexpected reply {type(msg).__name__}')
