"""Our spawn backends inside upstream tractor (goodboy/tractor).

Upstream tractor has no way to add a spawn backend from outside, so
:func:`register` patches it at run time (see ``_patches``: every patch
point is checked first, and a tractor whose shape is not one this adapter
speaks is a clear :class:`UnsupportedTractor`). Both of upstream's spawn
contracts are spoken, told apart by feature (``_shape``): the backends reap
(main up to 3690e43a) and per-child reap (PRs #481/#484). After it::

    import tractor, tractor_subint.upstream
    tractor_subint.upstream.register()
    async with tractor.open_nursery(start_method='subint_forkserver') as an:
        ...

``main_thread_forkserver`` and ``subint_forkserver`` then spawn upstream
actors (``subint_fork`` is there too, as the documented dead end it is).
The children run upstream's own ``_actor_child_main``, inside our child
shell: forked from a fresh main-interpreter thread (or by the tree's
forkserver, or taken from the warm pool), with a lifeline to the parent and
signals bridged through the child's main interpreter.

Elsewhere: ``-p tractor_subint.upstream.plugin`` registers them in a pytest
run of upstream's suite (next to upstream's own plugin, whose
``--spawn-backend`` it leaves alone); a ``.pth`` hook registers them in any
interpreter started with ``TRACTOR_SPAWN_METHOD`` naming one of our keys.
"""
from __future__ import annotations

from typing import NoReturn

from ._patches import (
    OUR_KEYS,
    SUPPORTED,
    UnsupportedTractor,
    UpstreamBackendKept,
    apply,
    patch_pytest_plugin,
    spawn_contract,
)

__all__ = [
    'OUR_KEYS', 'SUPPORTED', 'UnsupportedTractor', 'UpstreamBackendKept', 'patch_pytest_plugin',
    'register', 'spawn_contract',
]


async def _subint_fork_proc(*args: object, **kwargs: object) -> NoReturn:
    from ..spawn.backends.subint_fork import SUBINT_FORK_REFUSAL

    raise NotImplementedError(SUBINT_FORK_REFUSAL)


def register(*, override: bool = False) -> tuple[str, ...]:
    """Add our backends to the upstream tractor this interpreter imports;
    return the keys added.

    A key upstream already provides (its own ``main_thread_forkserver`` on
    PR #463's tree) stays upstream's, with an :class:`UpstreamBackendKept`
    warning naming it, unless ``override=True``. Idempotent (the first call
    decides). Raises :class:`UnsupportedTractor` (changing nothing) when a
    patch point differs from :data:`SUPPORTED`, and ``ImportError`` when
    tractor is not installed.
    """
    def methods() -> dict[str, object]:
        from ._backend import make_spawn_method

        return {
            'main_thread_forkserver': make_spawn_method('main_thread_forkserver'),
            'subint_forkserver': make_spawn_method('subint_forkserver'),
            'subint_fork': _subint_fork_proc,
        }

    return apply(methods, override=override)
