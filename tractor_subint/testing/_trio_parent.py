"""Run a test body as a trio parent, bounded from the inside."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec

import trio

P = ParamSpec('P')


def trio_parent_test(timeout: float) -> Callable[[Callable[P, Awaitable[object]]], Callable[P, None]]:
    """Decorate an ``async def`` test so it runs inside ``trio.run()`` under
    ``trio.fail_after(timeout)``.

    The bound lives inside the run, so a hang fails this test with
    ``trio.TooSlowError`` and the session goes on; pytest-timeout stays the
    last-resort cap.
    """
    def decorate(fn: Callable[P, Awaitable[object]]) -> Callable[P, None]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f'{fn.__qualname__} must be an async function')

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            async def bounded() -> None:
                with trio.fail_after(timeout):
                    await fn(*args, **kwargs)
            trio.run(bounded)

        return run
    return decorate
