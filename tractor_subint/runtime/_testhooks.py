"""Fault and delay injection for tests, read from one environment variable.

``TRACTOR_SUBINT_TEST_HOOKS="point=value,point=value"``; points:

- ``parent_before_handshake=SECONDS``: the parent waits this long after the
  child was started before it starts waiting for the child's hello (forces
  the late-listener interleaving: the child is ready first).
- ``child_before_ready=SECONDS``: the child waits before saying hello.
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

__all__ = ['HOOKS_ENV', 'delay', 'enabled', 'exit_code']


async def delay(point: str) -> None:
    seconds = hooks().get(point)
    if seconds:
        await trio.sleep(float(seconds))


def enabled(point: str) -> bool:
    return bool(hooks().get(point))


def exit_code(point: str) -> int | None:
    code = hooks().get(point)
    return int(code) if code else None
