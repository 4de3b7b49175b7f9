"""Threads that carry their exception back to whoever joins them."""
from __future__ import annotations

import threading
from collections.abc import Callable


class ReraisingThread(threading.Thread):
    """A thread that runs ``fn``, calls ``on_exit`` however ``fn`` ends, and
    re-raises ``fn``'s exception in whoever calls :meth:`join_and_reraise`."""

    def __init__(
        self,
        fn: Callable[[], object],
        *,
        name: str,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=name)
        self._fn = fn
        self._on_exit = on_exit
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def join_and_reraise(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def run_in_thread(fn: Callable[[], object], *, thread_name: str) -> None:
    """Run ``fn`` on a new thread, join it, re-raise what it raised."""
    thread = ReraisingThread(fn, name=thread_name)
    thread.start()
    thread.join_and_reraise()


def require_signal_thread(what: str) -> None:
    """Raise :class:`RuntimeError` unless called on the main thread of the
    main interpreter, the only thread that runs Python signal handlers."""
    import _interpreters

    if (threading.current_thread() is not threading.main_thread()
            or _interpreters.get_current() != _interpreters.get_main()):
        raise RuntimeError(
            f'{what} must be used on the main thread of the main interpreter: '
            f'no other thread ever runs signal handlers'
        )
