"""A line channel from a forked child to its trio parent over a pipe."""
from __future__ import annotations

import os

import trio

from tractor_subint.spawn._subint_forkserver import fork_from_worker_thread


async def fork_child(target, **kwargs) -> int:
    """``fork_from_worker_thread(target, **kwargs)`` from inside trio."""
    return await trio.to_thread.run_sync(lambda: fork_from_worker_thread(target, **kwargs))


class ChildPipe:
    """The child keeps :attr:`write_fd` (pass it in ``keep_fds``) and writes
    lines with :func:`send_line`; the parent reads them with :meth:`receive_line`
    after calling :meth:`parent_side` once the fork is done."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self._stream: trio.lowlevel.FdStream | None = None
        self._buffer = b''

    @property
    def keep_fds(self) -> tuple[int]:
        return (self.write_fd,)

    def parent_side(self) -> ChildPipe:
        """Drop the parent's copy of the write end, so EOF means the child is done."""
        os.close(self.write_fd)
        self._stream = trio.lowlevel.FdStream(self.read_fd)
        return self

    async def receive_line(self) -> str:
        assert self._stream is not None, 'call parent_side() first'
        while b'\n' not in self._buffer:
            chunk = await self._stream.receive_some()
            if not chunk:
                raise EOFError(f'child closed the pipe; partial line {self._buffer!r}')
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\n', 1)
        return line.decode()

    async def receive_all(self) -> str:
        """Everything until EOF (all holders of the write end closed it)."""
        assert self._stream is not None, 'call parent_side() first'
        data = self._buffer
        while chunk := await self._stream.receive_some():
            data += chunk
        self._buffer = b''
        return data.decode()

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()


def send_line(fd: int, line: str) -> None:
    os.write(fd, line.encode() + b'\n')
