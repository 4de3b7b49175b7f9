"""Host an entry on the main thread of a child's main interpreter.

A ``host='main'`` child (``main_thread_forkserver``, ``trio``) runs its
actor's trio on the process's main thread, as a ``python -m`` child would:
code that needs the main thread works there (a debugger REPL that swaps the
SIGINT handler while it owns the terminal, ``signal.signal`` for SIGUSR1
stack dumps, ``trio``'s own signal wakeup fd).

The child's duties stay as they were:

- signals: SIGINT and SIGTERM get a Python-level handler here that forwards
  the signal number as a byte on ``cancel_fd`` (the entry cancels itself, as
  under the other hosts); a second delivery of the same signal restores the
  default disposition and re-raises it, so the process ends at once. Code
  may replace the handler for a while (a debugger shielding its REPL from
  Ctrl-C) and put it back.
- the lifeline: a *keeper* thread polls the parent's socket for a hang-up;
  then it forwards :data:`LIFELINE_BYTE` and, if the entry has not returned
  ``grace`` seconds later, ends the process with :data:`PARENT_GONE_EXIT`
  (``os._exit`` works from any thread, and a thread blocked in poll needs no
  help from the main thread, whatever it is doing).

Why the keeper blocks SIGINT/SIGTERM: so that the kernel delivers them to
the main thread, where a blocking call then returns EINTR and the handler
runs at once. In a child forked from a worker thread, handlers run reliably
only because the fork repaired CPython's record of the main thread
(``_main_tstate``, ``ai/conc-anal/fork_child_signal_handlers.md``).
"""
from __future__ import annotations

import _thread
import os
import select
import signal
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

from ._contract import LIFELINE_BYTE, PARENT_GONE_EXIT
from ._prelude import flush_std_streams
from ._threads import require_signal_thread

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class MainThreadHost:
    """Own ``signals`` and the lifeline while an entry runs on this thread.

    Use as a context manager on the main thread of the main interpreter;
    run the entry inside it, with :attr:`read_fd` as its ``cancel_fd``;
    :attr:`exit_code` then says how the process should exit.
    """

    def __init__(
        self,
        signals: Iterable[int] = DEFAULT_SIGNALS,
        *,
        lifeline_fd: int = -1,
        grace: float = 0.0,
    ) -> None:
        self.signals = frozenset(signals)
        self.received: list[int] = []
        """Signals forwarded so far, first first."""
        self.parent_gone = False
        """True once the lifeline hung up."""
        self.read_fd = self._write_fd = -1
        self._done_r = self._done_w = -1
        self._lifeline_fd = lifeline_fd
        self._grace = grace
        self._previous: dict[int, Any] = {}
        self._keeper: _thread.LockType | None = None
        """Held by the keeper thread until it returns."""

    def __enter__(self) -> MainThreadHost:
        require_signal_thread('MainThreadHost')
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._done_r, self._done_w = os.pipe()
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        if self._lifeline_fd >= 0:
            self._start_keeper()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._keeper is not None:
            os.write(self._done_w, b'\0')
            self._keeper.acquire()  # released as the keeper returns
            self._keeper = None
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        for fd in (self.read_fd, self._write_fd, self._done_r, self._done_w):
            os.close(fd)
        self.read_fd = self._write_fd = self._done_r = self._done_w = -1

    @property
    def exit_code(self) -> int:
        """0, the shell convention 128 + signum for the first signal, or
        :data:`PARENT_GONE_EXIT` after a lifeline hang-up."""
        if self.received:
            return 128 + self.received[0]
        return PARENT_GONE_EXIT if self.parent_gone else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum in self.received:  # the graceful path did not finish: die of it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.received.append(signum)
        self._send(signum)

    def _send(self, byte: int) -> None:
        try:
            os.write(self._write_fd, bytes([byte]))
        except OSError:
            pass  # a full pipe already holds a cancellation request

    def _start_keeper(self) -> None:
        # epoll, not poll: a thread blocked in poll() holds a reference on
        # every file it watches, so an entry that closes its IPC socket would
        # not close it while we watch, and its parent would never see the EOF.
        # An epoll set holds none: the last close ends the socket and leaves
        # the set (and the keeper waits on for the entry to return).
        # Registered here, before the entry runs: the keeper thread may first
        # run after the entry has closed its socket (a short-lived actor), and
        # the fd number may name something else by then.
        poller = select.epoll()
        try:
            poller.register(self._done_r, select.EPOLLIN)
            poller.register(self._lifeline_fd, select.EPOLLRDHUP)
            self._keeper = self._start_thread(poller)
        except BaseException:
            poller.close()
            raise

    def _start_thread(self, poller: select.epoll) -> _thread.LockType:
        """Start the keeper on ``poller`` (it closes it); return the lock it
        holds until it returns.

        A bare thread, not a ``threading.Thread``, whose ``start()`` waits
        until the new thread has run (two context switches and a GIL
        hand-over) on every actor's way to ``Ready``; the keeper needs none of
        threading's bookkeeping. Threads inherit the creating thread's signal
        mask at creation: block while creating the keeper only, so that it
        never receives these signals.
        """
        exited = _thread.allocate_lock()
        exited.acquire()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self.signals)
        try:
            _thread.start_new_thread(self._keep_lifeline, (poller, exited))
        except BaseException:
            exited.release()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return exited

    def _keep_lifeline(self, poller: select.epoll, exited: _thread.LockType) -> None:
        try:
            if any(fd == self._done_r for fd, _ in self._poll(poller, -1.0)):
                return
            self.parent_gone = True
            self._send(LIFELINE_BYTE)
            if not self._poll(poller, self._grace):
                flush_std_streams()
                os._exit(PARENT_GONE_EXIT)
        finally:
            poller.close()
            exited.release()

    def _poll(self, poller: select.epoll, timeout: float) -> list[tuple[int, int]]:
        """``timeout`` seconds (-1: none) for events; the lifeline's only once."""
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while True:
            left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic()) + 0.001
            try:
                events = poller.poll(left)
            except InterruptedError:
                events = []
            if events or (deadline is not None and time.monotonic() >= deadline):
                for fd, _mask in events:
                    if fd == self._lifeline_fd:
                        try:
                            poller.unregister(fd)
                        except OSError:
                            pass  # closed meanwhile: it left the set by itself
                return events
