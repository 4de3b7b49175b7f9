"""Line channels from a child to its trio parent: over a pipe, or over a socket."""
from __future__ import annotations

import os
import socket

import trio

from tractor_subint.spawn._subint_forkserver import fork_from_worker_thread


async def fork_child(target, **kwargs) -> int:
    """``fork_from_worker_thread(target, **kwargs)`` from inside trio."""
    return await trio.to_thread.run_sync(lambda: fork_from_worker_thread(target, **kwargs))


class LineReader:
    """Lines, or everything until EOF, from a trio stream a child writes to."""

    def __init__(self, stream: trio.abc.HalfCloseableStream | trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self._buffer = b''

    async def receive_line(self) -> str:
        while b'\n' not in self._buffer:
            chunk = await self.stream.receive_some()
            if not chunk:
                raise EOFError(f'child closed its end; partial line {self._buffer!r}')
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\n', 1)
        return line.decode()

    async def receive_all(self) -> str:
        """Everything until EOF (all holders of the other end closed it)."""
        data = self._buffer
        while chunk := await self.stream.receive_some():
            data += chunk
        self._buffer = b''
        return data.decode()

    async def aclose(self) -> None:
        await self.stream.aclose()


def socket_reader(sock: socket.socket) -> LineReader:
    """Read lines from a child through our end of a connected socket."""
    return LineReader(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))


class ChildPipe:
    """The child keeps :attr:`write_fd` (pass it in ``keep_fds``) and writes
    lines with :func:`send_line`; the parent reads them with :meth:`receive_line`
    after calling :meth:`parent_side` once the fork is done."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._reader: LineReader | None = None

    @property
    def keep_fds(self) -> tuple[int]:
        return (self.write_fd,)

    def parent_side(self) -> ChildPipe:
        """Drop the parent's copy of the write end, so EOF means the child is done."""
        os.close(self.write_fd)
        self._reader = LineReader(trio.lowlevel.FdStream(self.read_fd))
        return self

    async def receive_line(self) -> str:
        assert self._reader is not None, 'call parent_side() first'
        return await self._reader.receive_line()

    async def receive_all(self) -> str:
        assert self._reader is not None, 'call parent_side() first'
        return await self._reader.receive_all()

    async def aclose(self) -> None:
        if self._reader is not None:
            await self._reader.aclose()


def send_line(fd: int, line: str) -> None:
    os.write(fd, line.encode() + b'\n')
