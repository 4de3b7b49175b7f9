"""Carry a forked child's exception to its parent.

A forked child ends with ``os._exit``, so an exception raised by its target
would otherwise leave nothing behind but an exit code. Before forking we open
a pipe: the child writes a small JSON report of the exception into it, and the
parent reads it after reaping. The report is bounded and written without
blocking, so a child can never wedge on a parent that is not reading yet.

Handles (:class:`ForkedProcess`, the forkserver's children) own their read
end. Only the bare-pid API, :func:`fork_from_worker_thread` with
:func:`wait_child`, keeps read ends in a pid-keyed table (:data:`REPORTS`),
from which whoever reaps the child claims it.
"""
from __future__ import annotations

import json
import os
import threading
import traceback

from ._exit_status import ChildExceptionInfo
from ._fds import close_fds

# Below the default 64 KiB pipe capacity: the whole report fits without a reader.
_MAX_REPORT_BYTES = 60_000


def encode_exception(exc: BaseException) -> bytes:
    typ = type(exc)
    report = {
        'type_name': f'{typ.__module__}.{typ.__qualname__}',
        'message': str(exc),
        'traceback': ''.join(traceback.format_exception(exc)),
    }
    data = json.dumps(report).encode()
    if len(data) > _MAX_REPORT_BYTES:
        keep = _MAX_REPORT_BYTES // 2
        report['traceback'] = (
            report['traceback'][:keep // 2]
            + '\n[... traceback truncated ...]\n'
            + report['traceback'][-keep // 2:]
        )
        report['message'] = report['message'][:keep // 4]
        data = json.dumps(report).encode()
    return data


def decode_report(data: bytes) -> ChildExceptionInfo | None:
    if not data:
        return None
    try:
        report = json.loads(data)
        return ChildExceptionInfo(
            type_name=str(report['type_name']),
            message=str(report['message']),
            traceback=str(report['traceback']),
        )
    except (ValueError, KeyError, TypeError):
        # A child killed mid-write leaves a torn report: say so, don't guess.
        return ChildExceptionInfo(
            type_name='<unreadable report>',
            message=data[:200].decode(errors='replace'),
            traceback='',
        )


def write_report(fd: int, exc: BaseException) -> None:
    """Child side: write the report for ``exc``; never blocks, never raises."""
    try:
        data = encode_exception(exc)
        os.set_blocking(fd, False)
        os.write(fd, data)
    except Exception:
        pass


class ReportTable:
    """The parent's read ends of the children's report pipes, keyed by pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}

    def register(self, pid: int, read_fd: int) -> None:
        with self._lock:
            self._fds[pid] = read_fd

    def claim(self, pid: int) -> int | None:
        """Take ownership of ``pid``'s read end (``None`` if not ours)."""
        with self._lock:
            return self._fds.pop(pid, None)

    def forget_all(self) -> None:
        """In a fresh fork child: the fds are closed by the prelude anyway."""
        with self._lock:
            self._fds.clear()


REPORTS = ReportTable()


def read_report(read_fd: int) -> ChildExceptionInfo | None:
    """Read and close a report pipe. Call only after the child has exited."""
    chunks = []
    try:
        os.set_blocking(read_fd, False)
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except BlockingIOError:
                # A descendant still holds the write end: all the child wrote
                # is already here, because the child itself has exited.
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    return decode_report(b''.join(chunks))


class ReportPipe:
    """The read end of one child's report pipe, owned by that child's handle."""

    def __init__(self, read_fd: int | None) -> None:
        self._fd = read_fd

    def take(self) -> ChildExceptionInfo | None:
        """Read and close the report (call once the child has exited); None
        after the first call, or if the child raised nothing."""
        fd, self._fd = self._fd, None
        return None if fd is None else read_report(fd)

    def __del__(self) -> None:
        close_fds([getattr(self, '_fd', None)])
