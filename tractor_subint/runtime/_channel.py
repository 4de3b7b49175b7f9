"""A bidirectional message channel: length-prefixed frames over a socket.

Each frame is a 4-byte big-endian length followed by that many bytes of one
encoded message. A clean end of stream between frames ends the channel
(:class:`trio.EndOfChannel`); an end inside a frame is a broken channel.

The channel drives its non-blocking socket itself, with trio's I/O waits
(not through ``trio.SocketStream``), because a message costs what its task
switches cost: at several microseconds each, a lock and a checkpoint per
send and a checkpoint per read were most of a round trip. Here:

- a send whose bytes the socket takes at once returns without a schedule
  point (it is still a cancellation point); frames queue behind one that
  waits for room, in order, and go out together, and a frame never goes
  out in part: once queued it is sent whole, even if the task that sent
  it is cancelled meanwhile;
- a read takes every complete frame already in the buffer before it asks
  the socket for more, and reads up to 64 KiB at a time, so a burst of
  small messages costs one system call and no task switch per message.
"""
from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import trio

from .._exceptions import PUBLIC_MODULE, ProtocolError, TractorSubintError
from ..log import get_logger
from ._bootspec import Aid, Uid
from ._codec import Codec, UndecodableValue
from ._msgs import Msg

log = get_logger('runtime')

_HEADER = struct.Struct('>I')

MAX_FRAME = 64 * 1024 * 1024
"""The default frame limit (64 MiB): one message, encoded, may be at most
this long. A larger one is refused where it is sent (:class:`FrameTooLarge`)
and, if it came anyway, where it arrives (a corrupt length must not allocate
GBs). A nursery raises or lowers it for its children's channels:
``open_nursery(max_frame=...)``."""

FRAME_LIMIT_CEILING = 2**32 - 1
"""The largest frame the 4-byte length header can describe."""


class FrameTooLarge(TractorSubintError, ValueError):
    """A message that encodes to more bytes than its channel's frame limit.
    Nothing was sent: the channel is fine, and the actor too."""

    __module__ = PUBLIC_MODULE


def check_max_frame(max_frame: object) -> int:
    """``max_frame`` checked: a whole number of bytes the header can carry."""
    if not isinstance(max_frame, int) or isinstance(max_frame, bool) or not (
        1 <= max_frame <= FRAME_LIMIT_CEILING
    ):
        raise ValueError(
            f'max_frame must be an int from 1 to {FRAME_LIMIT_CEILING} (bytes), not {max_frame!r}'
        )
    return max_frame


def _mib(n: int) -> str:
    return f'{n / (1024 * 1024):.4g} MiB'


class Channel:
    """Send and receive :data:`Msg` values over a connected stream socket,
    which the channel owns (and closes)."""

    def __init__(self, sock: socket.socket, codec: Codec, *, max_frame: int = MAX_FRAME) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._codec = codec
        self.max_frame = check_max_frame(max_frame)
        """The largest encoded message this channel sends or accepts, in bytes."""
        self._in = bytearray()
        self._in_pos = 0
        """Where the next unread frame starts in ``_in``."""
        self._eof = False
        self._out = bytearray()
        """Bytes queued behind a send that waits for room, in order."""
        self._queued = 0
        self._written = 0
        """Bytes ever queued and ever written: a sender whose frame ends at
        byte ``n`` of the stream is done once ``_written >= n``."""
        self._writer: trio.lowlevel.Task | None = None
        """The task writing ``_out`` now, if one is."""
        self._room = trio.lowlevel.ParkingLot()
        self._post_writer: trio.lowlevel.Task | object | None = None
        self._post_writer_idle = False
        self._posts = 0
        self._failed = False
        """Whether the socket failed a write (posts then send at once, to raise)."""
        self._closed = False
        self.aid: Aid | None = None
        """The identity of the actor at the other end, once known."""

    def __repr__(self) -> str:
        peer = f'{self.aid.name}[{self.aid.uuid[:8]}] pid={self.aid.pid}' if self.aid else '?'
        return f'<Channel to {peer} ({self._codec.name})>'

    @property
    def raddr(self) -> Any:
        """Where the actor at the other end listens (a ``UDSAddress``), once
        it is known who is there."""
        from ._discovery import UDSAddress

        return None if self.aid is None else UDSAddress.of(self.aid.uid, self.aid.pid)

    def use_codec(self, codec: Codec) -> None:
        """Speak ``codec`` from now on (after a handshake in another)."""
        self._codec = codec

    @property
    def uid(self) -> Uid | None:
        """The other end's ``(name, uuid)`` (tractor's older spelling of
        ``aid.uid``)."""
        return None if self.aid is None else self.aid.uid

    @classmethod
    def from_socket(cls, sock: socket.socket, codec: Codec, *, max_frame: int = MAX_FRAME) -> Channel:
        """Wrap a connected stdlib socket; the channel owns it from now on."""
        return cls(sock, codec, max_frame=max_frame)

    @classmethod
    def from_stream(cls, stream: trio.SocketStream, codec: Codec, *, max_frame: int = MAX_FRAME) -> Channel:
        """Take over the socket of a connected ``trio.SocketStream`` (which
        must not be used afterwards)."""
        return cls(socket.socket(fileno=stream.socket.detach()), codec, max_frame=max_frame)

    def fileno(self) -> int:
        """The fd of the socket under this channel (-1 once it is closed)."""
        return self._sock.fileno()

    # -- sending -----------------------------------------------------------------

    async def send(self, msg: Msg) -> None:
        """Send ``msg`` now: returns once its frame, and every frame queued
        before it, is in the socket."""
        await self.send_raw(self._frame(msg))

    async def post(self, msg: Msg) -> None:
        """Send ``msg`` soon: its frame is queued in order with every other
        and goes out with the next :meth:`send`, or else once this task lets
        others run (a writer task then sends every frame queued meanwhile in
        one system call: a stream's items cost one per batch, not one each).
        Waits only while more than :data:`POST_HIGH_WATER` bytes are queued;
        a schedule point every :data:`POST_YIELD_EVERY` posts."""
        frame = self._frame(msg)
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._failed:
            await self.send_raw(frame)  # raises the socket's error again
            return
        self._queued += len(frame)
        self._out += frame
        if len(self._out) > POST_HIGH_WATER:
            await self._wait_written(self._queued)
            return
        self._wake_writer()
        self._posts += 1
        if self._posts >= POST_YIELD_EVERY:
            # A producer that never waits still lets others run now and then.
            self._posts = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, msg: Msg) -> None:
        """Send ``msg`` without waiting: what the socket takes now goes now,
        the rest is queued whole, in order, for the writer task. For a task
        that must not wait on the peer's reading (a message loop answering
        a call itself: two such loops each waiting for the other to read
        would wait forever). Raises as :meth:`send` does if the socket has
        failed, or the frame is too large."""
        if not self._write_or_queue(self._frame(msg)):
            self._wake_writer()

    def _write_or_queue(self, data: bytes) -> bool:
        """Write ``data`` to the socket if nothing is queued before it and
        the socket takes it all (True); else queue what is left, whole and in
        order (False: someone must still write it)."""
        self._queued += len(data)
        if self._out:
            self._out += data
            return False
        sent = self._send_some(data)
        self._written += sent
        if sent == len(data):
            return True
        self._out += memoryview(data)[sent:]
        return False

    def _frame(self, msg: Msg) -> bytes:
        data = self._codec.encode(msg)
        if len(data) > self.max_frame:
            raise FrameTooLarge(
                f'a {type(msg).__name__} of {len(data)} bytes ({_mib(len(data))}) exceeds the '
                f'frame limit of {self.max_frame} bytes ({_mib(self.max_frame)}): nothing was '
                f'sent; raise the limit for a nursery\'s actors with open_nursery(max_frame=...), '
                f'or send less at once'
            )
        return _HEADER.pack(len(data)) + data

    async def send_raw(self, data: bytes) -> None:
        """Write ``data`` (whole frames) to the socket now, in order with
        every other send."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if not self._write_or_queue(data):
            await self._wait_written(self._queued)

    async def _wait_written(self, end: int) -> None:
        """Until the first ``end`` bytes ever queued are written: as the
        writer if there is none, else behind it."""
        while self._written < end:
            if self._writer is None:
                await self._drain()
            else:
                await self._room.park()

    def _send_some(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            self._failed = True
            raise _stream_error(exc) from exc

    async def _drain(self) -> None:
        """Write ``_out`` as the socket makes room; other senders wait
        (:attr:`_room`). If this task is cancelled, a waiting sender (or the
        writer task) takes over, so that queued frames still go whole."""
        self._writer = trio.lowlevel.current_task()
        try:
            while self._out:
                sent = self._send_some(self._out)
                if sent:
                    del self._out[:sent]
                    self._written += sent
                    self._room.unpark_all()
                else:
                    await trio.lowlevel.wait_writable(self._sock)
        finally:
            self._writer = None
            self._room.unpark_all()
            if self._out and not self._failed:
                self._wake_writer()

    def _wake_writer(self) -> None:
        """Have the writer task send what :meth:`post` queued, once the
        running task lets it run (it is started on first use)."""
        writer = self._post_writer
        if writer is None:
            if self._closed:
                return
            try:
                trio.lowlevel.spawn_system_task(self._write_posted, name=f'writer of {self!r}')
            except RuntimeError:  # the run is ending: the next send takes them
                return
            self._post_writer = _STARTING
        elif isinstance(writer, trio.lowlevel.Task) and self._post_writer_idle:
            self._post_writer_idle = False
            trio.lowlevel.reschedule(writer)

    async def _write_posted(self) -> None:
        """The writer task: sends posted frames whenever some wait and no
        other task is writing; lives until the channel closes (or its socket
        fails). A system task: it must not raise."""
        self._post_writer = trio.lowlevel.current_task()
        try:
            while not self._closed and not self._failed:
                if self._out and self._writer is None:
                    await self._drain()
                    continue
                self._post_writer_idle = True

                def abort(_: object) -> trio.lowlevel.Abort:
                    self._post_writer_idle = False
                    return trio.lowlevel.Abort.SUCCEEDED

                await trio.lowlevel.wait_task_rescheduled(abort)
        except (trio.Cancelled, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the run ends, or the socket failed (the next send raises it)
        except Exception:
            self._failed = True
            log.exception('the writer of %r failed', self)
        finally:
            self._post_writer = None
            self._post_writer_idle = False

    # -- receiving ---------------------------------------------------------------

    async def recv(self) -> Msg:
        """The next message; :class:`trio.EndOfChannel` once the peer is gone."""
        while True:
            buffer, start = self._in, self._in_pos
            have = len(buffer) - start
            if have >= _HEADER.size:
                (length,) = _HEADER.unpack_from(buffer, start)
                if length > self.max_frame:
                    raise ProtocolError(
                        f'incoming frame of {length} bytes exceeds the {self.max_frame}-byte limit'
                    )
                if have >= _HEADER.size + length:
                    self._in_pos = end = start + _HEADER.size + length
                    with memoryview(buffer) as view, view[start + _HEADER.size:end] as body:
                        return self._decode(body)
            await self._fill()

    def _decode(self, body: memoryview) -> Msg:
        try:
            return self._codec.decode(body)
        except UndecodableValue:
            raise  # one call's problem: the stream is still in step
        except Exception as exc:  # the codec's own errors, RecursionError, ...
            raise ProtocolError(
                f'a {len(body)}-byte frame does not decode: {type(exc).__name__}: {exc} '
                f'(starts {bytes(body[:16])!r})'
            ) from exc

    async def _fill(self) -> None:
        """Read more bytes into the buffer (dropping what was already read)."""
        if self._in_pos:
            del self._in[:self._in_pos]
            self._in_pos = 0
        chunk = b'' if self._eof else await self._receive_some()
        if not chunk:
            self._eof = True
            if not self._in:
                raise trio.EndOfChannel
            raise trio.BrokenResourceError('peer closed the channel inside a frame')
        self._in += chunk

    async def _receive_some(self) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            chunk = self._recv()
        except BlockingIOError:
            pass
        else:
            # Bytes were waiting: this reader has been busy, let others run.
            await trio.lowlevel.cancel_shielded_checkpoint()
            return chunk
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                return self._recv()
            except BlockingIOError:
                pass

    def _recv(self) -> bytes:
        try:
            return self._sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            raise BlockingIOError from None
        except ConnectionResetError:
            return b''  # a reset peer is a gone peer
        except OSError as exc:
            error = _stream_error(exc)
            if isinstance(error, trio.BrokenResourceError):
                return b''
            raise error from exc

    def __aiter__(self) -> Channel:
        return self

    async def __anext__(self) -> Msg:
        try:
            return await self.recv()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._closed = True
        writer = self._post_writer
        if writer is not None and isinstance(writer, trio.lowlevel.Task) and self._post_writer_idle:
            self._post_writer_idle = False
            trio.lowlevel.reschedule(writer)
        sock = self._sock
        if sock.fileno() != -1:
            try:
                trio.lowlevel.notify_closing(sock)
            except OSError:
                pass  # the fd was closed under us (user code)
            try:
                sock.close()
            except OSError:
                pass  # likewise
        await trio.lowlevel.checkpoint()


_READ_SIZE = 65536

POST_HIGH_WATER = 256 * 1024
"""Bytes :meth:`Channel.post` may leave queued before it waits for them to
be written (a producer faster than the socket is slowed down to it)."""

POST_YIELD_EVERY = 64
"""Posts in a row after which :meth:`Channel.post` lets other tasks run."""

_STARTING = object()
"""The writer task, spawned and not yet running."""

_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


def _stream_error(exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
    """What a socket error means to a channel's user, as ``trio.SocketStream``
    says it: a closed socket, or a broken connection."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError('this channel\'s socket was already closed')
    return trio.BrokenResourceError(f'socket connection broken: {exc}')
