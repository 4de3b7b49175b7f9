"""Turn SIGINT/SIGTERM into a cancellation of trio running on another thread
(typically inside a subinterpreter).

Python signal handlers only ever run on the main thread of the main
interpreter, and in a child forked from a worker thread on CPython 3.13+ not
even reliably there: the eval loop is told about a signal through
``_PyRuntime.main_tstate``, which a fork from a non-main thread leaves pointing
at the parent's dead main thread, so a handler only runs when a blocking call
happens to return EINTR (``ai/conc-anal/fork_child_signal_handlers.md``).

So nothing here relies on a Python-level handler running. The C-level handler
always writes the signal number into the ``signal.set_wakeup_fd`` pipe, from
whatever thread the kernel picked. :class:`SignalForwarder` runs the hosted
code on a worker thread and keeps the main thread in a ``poll()`` loop on that
pipe; each signal is passed on as a byte into a second pipe, which trio in the
hosted code watches (:func:`cancel_on_forwarded_signal`) to cancel itself. A
signal that arrives before anyone watches waits in a pipe: it is never lost.

A second delivery of the same signal means the graceful path did not finish:
the loop restores the default disposition and re-raises the signal, so the
process ends at once.

The same loop keeps the child's lifeline (:meth:`SignalForwarder.watch_hangup`):
when the peer of a socket hangs up (the parent died, even by SIGKILL), a
:data:`LIFELINE_BYTE` is forwarded like a signal and, if the hosted code has
not finished ``grace`` seconds later, the process exits with ``exit_code``
:data:`PARENT_GONE_EXIT`. The hosted code may be stuck in a blocking call; the
main thread is not.
"""
from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from types import FrameType

from ._contract import LIFELINE_BYTE, PARENT_GONE_EXIT
from ._prelude import flush_std_streams
from ._subint_host import run_subint_here
from ._threads import ReraisingThread, require_signal_thread

# The host side (SignalForwarder) is imported by the forkserver process, which
# stays trio-free: trio is imported only by the hosted side's functions, which
# always run under trio.

SIGNAL_FD_GLOBAL = '__tractor_subint_signal_fd__'
"""Name of the subinterpreter ``__main__`` global holding the pipe's read end."""

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DONE = 0  # no signal has number 0: the wakeup pipe's "hosted code finished" byte


def _python_level_noop(signum: int, frame: FrameType | None) -> None:
    # Installing a Python handler is what makes CPython install its C handler
    # (the one that writes to the wakeup fd); the real work is in the loop.
    pass


class SignalForwarder:
    """Own ``signals`` in this (main) interpreter and forward them to a pipe.

    Use as a context manager on the main thread of the main interpreter, hand
    :attr:`read_fd` to the hosted code, and run that code with
    :meth:`run_in_worker_thread`. :attr:`received` lists the signals
    forwarded so far.
    """

    def __init__(self, signals: Iterable[int] = DEFAULT_SIGNALS) -> None:
        self.signals = frozenset(signals)
        self.received: list[int] = []
        self.read_fd = self._write_fd = -1
        self._wake_r = self._wake_w = -1
        self._previous: dict[int, object] = {}
        self._previous_wakeup_fd = -1
        self._lifeline_fd = -1
        self._lifeline_grace = 0.0
        self.parent_gone = False
        """True once the lifeline hung up."""

    def watch_hangup(self, fd: int, *, grace: float) -> None:
        """Treat a hang-up of the socket ``fd``'s peer as "parent gone".

        The hosted code is told (a :data:`LIFELINE_BYTE` on the forwarded
        pipe) and gets ``grace`` seconds to finish before the process exits
        with :data:`PARENT_GONE_EXIT`. ``fd`` stays open and usable: only its
        hang-up is watched, not its data.
        """
        self._lifeline_fd = fd
        self._lifeline_grace = grace

    def __enter__(self) -> SignalForwarder:
        require_signal_thread('SignalForwarder')
        self.read_fd, self._write_fd = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._write_fd, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._previous_wakeup_fd = signal.set_wakeup_fd(
            self._wake_w, warn_on_full_buffer=False
        )
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, _python_level_noop)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup_fd)
        for fd in (self.read_fd, self._write_fd, self._wake_r, self._wake_w):
            os.close(fd)
        self.read_fd = self._write_fd = self._wake_r = self._wake_w = -1

    def run_in_worker_thread(self, fn: Callable[[], object], *, thread_name: str) -> None:
        """Run ``fn`` on a new thread while this thread forwards signals;
        return (or re-raise) when ``fn`` does."""
        worker = ReraisingThread(fn, name=thread_name, on_exit=self._wake_done)
        worker.start()
        self._forward_until_done()
        worker.join_and_reraise()

    def _wake_done(self) -> None:
        try:
            os.write(self._wake_w, bytes([_DONE]))
        except OSError:
            pass  # a full pipe wakes the loop just as well

    def _forward_until_done(self) -> None:
        # epoll, not poll: a thread blocked in poll() holds a reference on
        # every file it watches, so hosted code that closes its IPC socket
        # (user code closing "stray" fds) would not close it at all while we
        # watch it, and its parent would never see the EOF. An epoll set
        # holds none: the last close ends the socket and leaves the set.
        poller = select.epoll()
        try:
            self._forward_with(poller)
        finally:
            poller.close()

    def _forward_with(self, poller: select.epoll) -> None:
        poller.register(self._wake_r, select.EPOLLIN)
        if self._lifeline_fd >= 0:
            poller.register(self._lifeline_fd, select.EPOLLRDHUP)
        deadline: float | None = None
        while True:
            timeout = -1.0
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic()) + 0.001
            try:
                events = poller.poll(timeout)
            except InterruptedError:
                events = []
            if deadline is not None and time.monotonic() >= deadline:
                flush_std_streams()
                os._exit(PARENT_GONE_EXIT)
            for fd, _mask in events:
                if fd == self._wake_r and self._drain_wakeup_pipe():
                    return
                if fd == self._lifeline_fd and deadline is None:
                    try:
                        poller.unregister(fd)
                    except OSError:
                        pass  # closed meanwhile: it left the set by itself
                    self.parent_gone = True
                    deadline = time.monotonic() + self._lifeline_grace
                    self._send(LIFELINE_BYTE)

    def _drain_wakeup_pipe(self) -> bool:
        """Forward the signals read; True once the hosted code is done."""
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return False
        done = False
        for signum in data:
            if signum == _DONE:
                done = True
            elif signum in self.signals:
                self._forward(signum)
        return done

    def _send(self, byte: int) -> None:
        try:
            os.write(self._write_fd, bytes([byte]))
        except OSError:
            pass  # a full pipe already holds a cancellation request

    def _forward(self, signum: int) -> None:
        if signum in self.received:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received.append(signum)
        self._send(signum)

    @property
    def exit_code(self) -> int:
        """0, the shell convention 128 + signum for the first signal, or
        :data:`PARENT_GONE_EXIT` after a lifeline hang-up."""
        if self.received:
            return 128 + self.received[0]
        return PARENT_GONE_EXIT if self.parent_gone else 0


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
    """Host ``bootstrap`` in a fresh subinterpreter on a worker thread while
    this main thread owns ``signals`` and forwards them to it as cancellation.

    The bootstrap finds the pipe with :func:`forwarded_signal_fd` (or just
    uses :func:`cancel_on_forwarded_signal`). Returns the exit code the host
    should use: 0, or 128 + the first forwarded signal. Raises
    :class:`SubintExecError` if the bootstrap raised.
    """
    with SignalForwarder(signals) as forwarder:
        forwarder.run_in_worker_thread(
            partial(
                run_subint_here,
                bootstrap,
                shared={**(shared or {}), SIGNAL_FD_GLOBAL: forwarder.read_fd},
            ),
            thread_name=thread_name,
        )
    return forwarder.exit_code
