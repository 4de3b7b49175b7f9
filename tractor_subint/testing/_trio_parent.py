"""Run a test body as a trio parent, bounded from the inside."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import overload

import trio

DEFAULT_TIMEOUT = 60.0
"""The bound of ``@trio_parent_test`` used without a timeout, seconds."""

type AsyncTest[**P] = Callable[P, Awaitable[object]]


@overload
def trio_parent_test[**P](
    timeout: float = DEFAULT_TIMEOUT,
) -> Callable[[AsyncTest[P]], Callable[P, None]]: ...
@overload
def trio_parent_test[**P](timeout: AsyncTest[P]) -> Callable[P, None]: ...


def trio_parent_test[**P](
    timeout: float | AsyncTest[P] = DEFAULT_TIMEOUT,
) -> Callable[[AsyncTest[P]], Callable[P, None]] | Callable[P, None]:
    """Decorate an ``async def`` test so it runs inside ``trio.run()`` under
    ``trio.fail_after(timeout)``: ``@trio_parent_test(10)``, or bare
    ``@trio_parent_test`` for :data:`DEFAULT_TIMEOUT`.

    The bound lives inside the run, so a hang fails this test with
    ``trio.TooSlowError`` and the session goes on; pytest-timeout stays the
    last-resort cap. The test's fixtures are its arguments, as usual.
    """
    if callable(timeout):
        return _decorate(timeout, DEFAULT_TIMEOUT)
    seconds = timeout

    def decorate(fn: AsyncTest[P]) -> Callable[P, None]:
        return _decorate(fn, seconds)

    return decorate


def _decorate[**P](fn: AsyncTest[P], timeout: float) -> Callable[P, None]:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f'{fn.__qualname__} must be an async function')

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        async def bounded() -> None:
            with trio.fail_after(timeout):
                await fn(*args, **kwargs)
        trio.run(bounded)

    return run
