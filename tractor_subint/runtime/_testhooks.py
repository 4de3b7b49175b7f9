"""Fault and delay injection for tests, read from one environment variable.

``TRACTOR_SUBINT_TEST_HOOKS="point=value,point=value"``; points:

- ``parent_before_handshake=SECONDS``: the parent waits this long after the
  child was started before it starts waiting for the child's hello (forces
  the late-listener interleaving: the child is ready first).
- ``child_before_ready=SECONDS``: the child waits before saying hello.
- ``parent_unreachable_grace=SECONDS``: how long the parent gives a child
  whose channel ended to exit on its own before it judges it unreachable and
  ends it (``0``: at once, as a loaded machine's slow exit looks).
- ``child_exit_before_ready=CODE``: the child exits with ``CODE`` instead of
  saying hello (a child that dies before connecting; also an upstream
  tractor child of ``tractor_subint.upstream``, before it dials back).
- ``upstream_parent_after_connect=1``: ``tractor_subint.upstream``'s parent
  starts waiting for a child's connection only once the child has dialled
  back and been registered (forces the lost-wakeup interleaving).
- ``pth_hook_register_fails=1``: the ``.pth`` hook (``tractor_subint._pth_hook``,
  which parses the variable itself) fails after ``register()`` imported
  tractor (its clean-up path: nothing printed, no half-imported tractor).

The spawn layer reads a few more points (``tractor_subint.spawn._hooks``);
unset, every hook is a no-op.
"""
from __future__ import annotations

import trio

from ..spawn._hooks import HOOKS_ENV, hooks

__all__ = ['HOOKS_ENV', 'delay', 'enabled', 'exit_code', 'seconds']


async def delay(point: str) -> None:
    value = hooks().get(point)
    if value:
        await trio.sleep(float(value))


def enabled(point: str) -> bool:
    return bool(hooks().get(point))


def exit_code(point: str) -> int | None:
    code = hooks().get(point)
    return int(code) if code else None


def seconds(point: str, default: float) -> float:
    """The hook's number of seconds, else ``default``."""
    value = hooks().get(point)
    return float(value) if value else default
