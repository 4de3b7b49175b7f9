"""The analyses behind our refusals (``ai/conc-anal/`` in the source tree)."""
from __future__ import annotations

FORK_IN_SUBINT_DOC = 'ai/conc-anal/subint_fork_blocked_by_cpython_post_fork.md'
FORK_WITH_LIVE_SUBINT_DOC = 'ai/conc-anal/fork_with_live_subinterpreter.md'
