"""Our spawn backends inside upstream tractor (goodboy/tractor).

Upstream tractor has no way to add a spawn backend from outside, so
:func:`register` patches it at run time (see ``_patches``: every patch
point is checked first, against the one upstream commit this was built for,
and a mismatch is a clear :class:`UnsupportedTractor`). After it::

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

from ._patches import OUR_KEYS, SUPPORTED, UnsupportedTractor, apply, patch_pytest_plugin

__all__ = ['OUR_KEYS', 'SUPPORTED', 'UnsupportedTractor', 'patch_pytest_plugin', 'register']


async def _subint_fork_proc(*args: object, **kwargs: object) -> NoReturn:
    from ..spawn.backends.subint_fork import SUBINT_FORK_REFUSAL

    raise NotImplementedError(SUBINT_FORK_REFUSAL)


def register() -> None:
    """Add our backends to the upstream tractor this interpreter imports.

    Idempotent. Raises :class:`UnsupportedTractor` (changing nothing) when a
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

    apply(methods)
