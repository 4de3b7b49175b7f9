"""Which spawn contract the installed upstream tractor speaks, told by its
features (not by a commit).

Upstream tractor has had two contracts between ``ActorNursery`` and a spawn
backend (the coroutine ``new_proc`` awaits):

- **backends reap** (``main`` up to 3690e43a, 2026-08-20): after handing the
  portal back, the backend waits for the nursery's ``_join_procs`` event,
  then soft-kills the child, collecting a ``run_in_actor`` child's result
  with ``spawn._spawn.cancel_on_completion`` meanwhile; it removes the child
  from ``ActorNursery._children`` itself.
- **per-child reap** (PR #481, ``tractor.to_actor``; PR #484, which also drops
  ``run_in_actor``): each child has its own reap request. The backend
  registers it (``ActorNursery._register_child_reap(uid)`` once the portal
  exists, or, where the nursery has it, ``_register_child(subactor, proc,
  None)`` as soon as the process exists, which also says whether the nursery
  is already cancelling), waits for that request instead of
  ``_join_procs``, then soft-kills; ``new_proc`` marks the child reaped
  (``_mark_child_reaped``) when the backend returns. ``run_in_actor`` may
  still be there (#481), with ``cancel_on_completion``.

:func:`detect` reads the shape; anything else is refused by name.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

SHAPES = (
    "'backends reap' (goodboy/tractor main up to 3690e43a: ActorNursery._join_procs, "
    "run_in_actor, spawn._spawn.cancel_on_completion) and 'per-child reap' (PRs #481/#484 "
    'and later main: ActorNursery._register_child_reap, _mark_child_reaped called by '
    'spawn._spawn.new_proc; with or without run_in_actor)'
)
"""The spawn contracts this adapter speaks, for error messages."""


@dataclass(frozen=True)
class SpawnContract:
    """What a backend must do for the installed tractor's nursery."""

    per_child_reap: bool
    """Wait on a per-child reap request (else on ``_join_procs``)."""
    registers_with_process: bool
    """Register through ``_register_child`` as soon as the process exists
    (#481), rather than ``_register_child_reap`` once the portal does."""
    run_in_actor: bool
    """``run_in_actor`` exists: collect its children's results with
    ``cancel_on_completion`` while soft-killing."""

    @property
    def name(self) -> str:
        kind = 'per-child reap' if self.per_child_reap else 'backends reap'
        return f"{kind}{', run_in_actor' if self.run_in_actor else ''}"


def _source(fn: Any) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ''


def detect(problems: list[str]) -> SpawnContract | None:
    """The contract of the tractor installed here; None (with ``problems``
    appended, each naming what differs) if it is neither shape."""
    from tractor.runtime._supervise import ActorNursery
    from tractor.spawn import _spawn

    before = len(problems)

    def need(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    def has(name: str) -> bool:
        return callable(getattr(ActorNursery, name, None))

    nursery_init = _source(ActorNursery.__init__)
    per_child = has('_register_child_reap') or has('_mark_child_reaped')
    run_in_actor = has('run_in_actor')
    if per_child:
        need(has('_register_child_reap'), 'ActorNursery._register_child_reap (per-child reap)')
        need(has('_mark_child_reaped'), 'ActorNursery._mark_child_reaped (per-child reap)')
        need('_mark_child_reaped' in _source(_spawn.new_proc),
             'tractor.spawn._spawn.new_proc calling ActorNursery._mark_child_reaped (per-child reap)')
    else:
        need('self._join_procs' in nursery_init, 'ActorNursery._join_procs (backends reap)')
        need(run_in_actor, 'ActorNursery.run_in_actor (backends reap)')
    if run_in_actor:
        need(callable(getattr(_spawn, 'cancel_on_completion', None)),
             'tractor.spawn._spawn.cancel_on_completion (run_in_actor results)')
        need('_cancel_after_result_on_exit' in nursery_init,
             'ActorNursery._cancel_after_result_on_exit (run_in_actor results)')
    if len(problems) > before:
        return None
    return SpawnContract(
        per_child_reap=per_child,
        registers_with_process=per_child and has('_register_child'),
        run_in_actor=run_in_actor,
    )
