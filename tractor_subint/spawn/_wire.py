"""Frames with fds attached: the wire of spawn's two services.

The forkserver and its requesters speak it (``forkserver/``), and so do a
warm pool's owner and its members (``pool/``): each is a spawn primitive, so
the framing lives beside them, not inside either.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON
holding an object. fds travel as SCM_RIGHTS on the first frame of each
direction only: that is how the receiver knows which frame they belong to.

:class:`WireChannel` never blocks, so one implementation serves both a
``poll()`` loop (the forkserver, a pool member: no trio) and trio tasks (a
requester, a pool's claimer).
"""
from __future__ import annotations

import array
import collections
import json
import os
import socket
import struct
from typing import Any

from .._exceptions import ProtocolError
from ._fds import close_fds

MAX_FRAME_BYTES = 64 << 20
"""Largest frame either side accepts (the boot payload travels in base64)."""

_HEADER = struct.Struct('>I')
_RECV_CHUNK = 65536
_MAX_FDS = 4  # per message; each side attaches at most one
_ANC_SPACE = socket.CMSG_SPACE(_MAX_FDS * array.array('i').itemsize)


def _encode_frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, separators=(',', ':')).encode()
    return _HEADER.pack(len(body)) + body


def _fds_from_ancdata(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array('i')
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % fds.itemsize
            fds.frombytes(data[:usable])
    return list(fds)


class WireChannel:
    """Frames, with fds attached, over a non-blocking stream socket.

    Never blocks: callers wait for readiness themselves (``poll()`` in the
    server, trio in the requester). Queued fds are duplicated, so the caller
    keeps its own and may close it at any time.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.eof = False
        self._inbuf = bytearray()
        self._infds: list[int] = []
        self._fds_truncated = False
        self._out: collections.deque[tuple[memoryview, list[int]]] = collections.deque()

    def fileno(self) -> int:
        return self.sock.fileno()

    def receive_available(self) -> None:
        """Read what the kernel has; set :attr:`eof` on hang-up or reset."""
        while not self.eof and len(self._inbuf) <= _HEADER.size + MAX_FRAME_BYTES:
            try:
                data, ancdata, flags, _ = self.sock.recvmsg(_RECV_CHUNK, _ANC_SPACE)
            except BlockingIOError:
                return
            except OSError:
                self.eof = True
                return
            self._infds.extend(_fds_from_ancdata(ancdata))
            if flags & socket.MSG_CTRUNC:
                self._fds_truncated = True
            if not data:
                self.eof = True
                return
            self._inbuf += data

    def next_frame(self) -> tuple[dict[str, Any], list[int]] | None:
        """The next complete frame and the fds received with it, or None.

        The caller owns the returned fds. Raises :class:`ProtocolError` on a
        malformed frame.
        """
        if self._fds_truncated:
            raise ProtocolError('fds were truncated in transit (too many attached)')
        if len(self._inbuf) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._inbuf)
        if size > MAX_FRAME_BYTES:
            raise ProtocolError(f'frame of {size} bytes exceeds the {MAX_FRAME_BYTES} byte limit')
        end = _HEADER.size + size
        if len(self._inbuf) < end:
            return None
        body = bytes(self._inbuf[_HEADER.size:end])
        del self._inbuf[:end]
        # SCM_RIGHTS fds arrive with the first byte of the frame they were
        # sent with, and each side attaches fds only to its first frame.
        fds, self._infds = self._infds, []
        try:
            obj = json.loads(body)
        except ValueError as exc:
            close_fds(fds)
            raise ProtocolError(f'frame is not JSON: {exc}') from None
        if not isinstance(obj, dict):
            close_fds(fds)
            raise ProtocolError(f'frame is a JSON {type(obj).__name__}, not an object')
        return obj, fds

    def queue(self, obj: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        self._out.append((memoryview(_encode_frame(obj)), [os.dup(fd) for fd in fds]))

    def flush_nowait(self) -> bool:
        """Send queued frames; True once all are sent. Raises ``OSError``
        (``BrokenPipeError``, ...) when the peer is gone."""
        while self._out:
            data, fds = self._out[0]
            ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))] if fds else []
            try:
                sent = self.sock.sendmsg([data], ancdata, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return False
            # Any accepted byte carried the fds: ours are no longer needed.
            close_fds(fds)
            if sent < len(data):
                self._out[0] = (data[sent:], [])
            else:
                self._out.popleft()
        return True

    def close(self) -> None:
        for _data, fds in self._out:
            close_fds(fds)
        self._out.clear()
        close_fds(self._infds)
        self._infds = []
        self.sock.close()
