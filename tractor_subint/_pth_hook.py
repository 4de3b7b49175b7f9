"""Run by ``tractor_subint_upstream.pth`` at every interpreter's start.

In the main interpreter of a process whose ``TRACTOR_SPAWN_METHOD`` names
one of our keys, registers our backends into upstream tractor, so that a
script run with that variable spawns with them (upstream's
``open_root_actor`` reads it). Everywhere else it does nothing, at the cost
of one dictionary lookup.

It never fails and never prints: ``site`` would print a 20-line "Error
processing line 1 of ...pth" for any exception, in every interpreter. In
particular it does nothing in a subinterpreter: each one of a
``subint_forkserver`` child runs ``site`` too, and there ``import tractor``
fails on CPython 3.13.0 (gh-138192) before our child's shim has run, leaving
a half-imported ``tractor`` behind (``ai/conc-anal/pth_hook_in_subinterpreters.md``);
our child registers there itself, after the shim. A tractor the adapter
cannot patch is left alone: ``tractor_subint.upstream.register()`` called
explicitly says why.

This module imports nothing of the package's (``tractor_subint.upstream``
imports msgspec, which an isolated subinterpreter refuses).
"""
from __future__ import annotations

import os
import sys

OUR_KEYS = ('main_thread_forkserver', 'subint_forkserver', 'subint_fork')
"""``tractor_subint.upstream.OUR_KEYS`` (a test keeps the two equal)."""


def _in_main_interpreter() -> bool:
    try:
        import _interpreters
    except ImportError:  # a Python without subinterpreters has only the main one
        return True
    return bool(_interpreters.get_current() == _interpreters.get_main())


def maybe_register() -> None:
    """Register our backends if this interpreter will use one (see above)."""
    try:
        if os.environ.get('TRACTOR_SPAWN_METHOD') not in OUR_KEYS or not _in_main_interpreter():
            return
        before = set(sys.modules)
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # e.g. a key upstream provides itself: keep it quietly
                from tractor_subint.upstream import register

                register()
                if 'pth_hook_register_fails=1' in os.environ.get('TRACTOR_SUBINT_TEST_HOOKS', ''):
                    raise RuntimeError('test hook: the .pth hook fails after importing tractor')
        except Exception:
            # No tractor, one we cannot patch, or one that fails to import:
            # leave no half-imported tractor behind for the script to trip on.
            for name in set(sys.modules) - before:
                if name == 'tractor' or name.startswith('tractor.'):
                    del sys.modules[name]
    except Exception:
        pass
