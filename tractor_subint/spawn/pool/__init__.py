"""Warm pools: ``subint_forkserver`` children forked and warmed ahead of time.

One home for the pool, in three parts:

- ``_member``: a member's life, and both sides of the hand-out protocol's
  wire form (READY; the frame that makes a member a child);
- ``_owner``: :class:`WarmPool`, the owner's bookkeeping and its half of the
  protocol, driven by a :class:`PoolKeeper` thread here or by the
  forkserver's poll loop (no trio in either); ``_sizing``, how many members
  a pool keeps and for how long;
- ``_claim``: the trio side of this process's pools: :func:`warm_up` when a
  nursery opens, :func:`claim_member` when a child is spawned;
- ``_interpreters``: warm (and recycled) subinterpreters for in-process
  ``subint`` actors.

Names are imported on first use: the forkserver process loads ``_owner`` and
``_member`` but never ``_claim`` (nor trio).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_module

__all__ = [
    'CAP_ENV_VAR',
    'DEFAULT_SIZE',
    'ENV_VAR',
    'PoolKeeper',
    'Sizing',
    'WarmPool',
    'aclose_local_pools',
    'claim_member',
    'close_interpreter_pools',
    'close_local_pools',
    'local_warm_pool',
    'interpreter_pool',
    'pooled_interpreters',
    'warm_up',
]

if TYPE_CHECKING:
    from ._claim import aclose_local_pools as aclose_local_pools
    from ._claim import claim_member as claim_member
    from ._claim import close_local_pools as close_local_pools
    from ._claim import local_warm_pool as local_warm_pool
    from ._claim import warm_up as warm_up
    from ._interpreters import close_interpreter_pools as close_interpreter_pools
    from ._interpreters import interpreter_pool as interpreter_pool
    from ._interpreters import pooled_interpreters as pooled_interpreters
    from ._owner import PoolKeeper as PoolKeeper
    from ._owner import WarmPool as WarmPool
    from ._sizing import CAP_ENV_VAR as CAP_ENV_VAR
    from ._sizing import DEFAULT_SIZE as DEFAULT_SIZE
    from ._sizing import ENV_VAR as ENV_VAR
    from ._sizing import Sizing as Sizing

__getattr__, __dir__ = lazy_module(__name__, {
    '._claim': ('aclose_local_pools', 'claim_member', 'close_local_pools', 'local_warm_pool', 'warm_up'),
    '._interpreters': ('close_interpreter_pools', 'interpreter_pool', 'pooled_interpreters'),
    '._owner': ('PoolKeeper', 'WarmPool'),
    '._sizing': ('CAP_ENV_VAR', 'DEFAULT_SIZE', 'ENV_VAR', 'Sizing'),
})
