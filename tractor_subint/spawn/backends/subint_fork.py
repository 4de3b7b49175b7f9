"""``subint_fork``: the documented dead end.

The idea was to fork straight from a subinterpreter-hosted actor. CPython
refuses: the child of a fork made from a subinterpreter's thread dies before
running any code. The key stays registered so that selecting it explains why
and names what works instead.
"""
from __future__ import annotations

from typing import NoReturn

from .._contract import SpawnRequest
from .._docs import FORK_IN_SUBINT_DOC

SUBINT_FORK_REFUSAL = (
    "the 'subint_fork' backend cannot work: CPython kills the child of a fork "
    "made from a subinterpreter's thread at once (\"Fatal Python error: "
    "_PyInterpreterState_DeleteExceptMain: not main interpreter\"), because its "
    "post-fork cleanup must run on the main interpreter. "
    f"Analysis: {FORK_IN_SUBINT_DOC}. "
    "Use start_method='subint_forkserver' instead: it forks from a "
    "main-interpreter thread and hosts trio in a fresh subinterpreter in the child."
)


async def subint_fork_proc(request: SpawnRequest) -> NoReturn:
    """Always raises :class:`NotImplementedError` (see module docstring)."""
    raise NotImplementedError(SUBINT_FORK_REFUSAL)
