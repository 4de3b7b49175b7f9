"""Turn SIGINT/SIGTERM into a cancellation of trio running in a subinterpreter.

Python signal handlers only ever run on the main thread of the main
interpreter. In a subint-hosted child that thread just waits for the
subinterpreter's thread, and a ``KeyboardInterrupt`` raised there would leave
trio inside the subinterpreter running (measured: it is still running 2 s
later). So the main interpreter owns the signals (:class:`SignalForwarder`)
and writes each one as a byte into a pipe; trio in the subinterpreter watches
the pipe (:func:`cancel_on_forwarded_signal`) and cancels itself. A signal
that arrives before the watcher starts waits in the pipe: it is never lost.

A second delivery of the same signal means the graceful path did not finish:
the handler restores the default disposition and re-raises the signal, so the
process ends at once.
"""
from __future__ import annotations

import os
import signal
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import FrameType

import _interpreters

from ._subint_host import run_subint_in_worker_thread

SIGNAL_FD_GLOBAL = '__tractor_subint_signal_fd__'
"""Name of the subinterpreter ``__main__`` global holding the pipe's read end."""

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalForwarder:
    """Own ``signals`` in this (main) interpreter and forward them to a pipe.

    Use as a context manager on the main thread of the main interpreter;
    hand :attr:`read_fd` to the subinterpreter. :attr:`received` lists the
    signals forwarded so far.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: list[int] = []
        self.read_fd = -1
        self._write_fd = -1
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalForwarder:
        if (threading.current_thread() is not threading.main_thread()
                or _interpreters.get_current() != _interpreters.get_main()):
            raise RuntimeError(
                'SignalForwarder must be installed on the main thread of the '
                'main interpreter: no other thread ever runs signal handlers'
            )
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        for fd in (self.read_fd, self._write_fd):
            os.close(fd)
        self.read_fd = self._write_fd = -1

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum in self.received:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received.append(signum)
        try:
            os.write(self._write_fd, bytes([signum]))
        except OSError:
            pass  # a full pipe already holds a cancellation request

    @property
    def exit_code(self) -> int:
        """0, or the shell convention 128 + signum for the first signal."""
        return 128 + self.received[0] if self.received else 0


class ForwardedSignal:
    """What ended a :func:`cancel_on_forwarded_signal` block, if anything."""

    def __init__(self) -> None:
        import trio

        self.signum: int | None = None
        self._arrived = trio.Event()

    async def wait(self) -> int | None:
        """Until a forwarded signal (or the host's EOF) arrives; its number."""
        await self._arrived.wait()
        return self.signum


async def _watch_signal_pipe(fd: int, scope: object, seen: ForwardedSignal) -> None:
    import trio

    os.set_blocking(fd, False)
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            continue
        # EOF means the host has closed the forwarder: nothing to wait for.
        if data:
            seen.signum = data[0]
        seen._arrived.set()
        scope.cancel()  # type: ignore[attr-defined]
        return


@asynccontextmanager
async def cancel_on_forwarded_signal(fd: int | None = None) -> AsyncIterator[ForwardedSignal]:
    """Inside the subinterpreter's trio: cancel the block on a forwarded signal.

    ``fd`` defaults to the one :func:`run_subint_with_signal_forwarding`
    published in ``__main__``. After the block, the yielded object's
    ``signum`` says which signal cancelled it (``None`` if none did).
    """
    import trio

    if fd is None:
        fd = forwarded_signal_fd()
    seen = ForwardedSignal()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signal_pipe, fd, nursery.cancel_scope, seen)
        try:
            yield seen
        finally:
            nursery.cancel_scope.cancel()


def forwarded_signal_fd() -> int:
    """The signal pipe's read end published in this subinterpreter's ``__main__``."""
    import __main__

    fd = getattr(__main__, SIGNAL_FD_GLOBAL, None)
    if not isinstance(fd, int):
        raise RuntimeError(
            f'no forwarded-signal fd in __main__.{SIGNAL_FD_GLOBAL}: not running '
            f'under run_subint_with_signal_forwarding()'
        )
    return fd


def run_subint_with_signal_forwarding(
    bootstrap: str,
    *,
    shared: Mapping[str, object] | None = None,
    thread_name: str = 'tractor-subint-driver',
    signals: Iterable[int] = DEFAULT_SIGNALS,
) -> int:
    """Host ``bootstrap`` in a fresh subinterpreter while this main thread
    owns ``signals`` and forwards them to it as cancellation.

    The bootstrap finds the pipe with :func:`forwarded_signal_fd` (or just
    uses :func:`cancel_on_forwarded_signal`). Returns the exit code the host
    should use: 0, or 128 + the first forwarded signal. Raises
    :class:`SubintExecError` if the bootstrap raised.
    """
    with SignalForwarder(signals) as forwarder:
        run_subint_in_worker_thread(
            bootstrap,
            thread_name=thread_name,
            shared={**(shared or {}), SIGNAL_FD_GLOBAL: forwarder.read_fd},
        )
    return forwarder.exit_code
