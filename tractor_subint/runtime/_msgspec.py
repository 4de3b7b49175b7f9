"""msgspec, where this interpreter can load it.

msgspec's extension module is single-phase: an interpreter that checks
extensions for multi-interpreter support (an isolated subinterpreter)
refuses it, but only after msgspec's pure-Python half has run (typing
helpers, datetime, decimal): 20-22 ms of an isolated actor's boot for an
``ImportError`` (3.13, 3.14; ``bench --imports``). The interpreter's own
config says beforehand whether it would: ``_codec`` and ``_payloads`` ask
:func:`refusal` before they import msgspec.
"""
from __future__ import annotations


def refusal() -> str | None:
    """Why msgspec cannot load in this interpreter, or None if it can (as
    far as the interpreter's config tells: a missing install shows at import)."""
    try:
        import _interpreters
    except ImportError:  # before 3.13: no subinterpreters to refuse it
        return None
    current = _interpreters.get_current()
    interp_id = current[0] if isinstance(current, tuple) else current
    if _interpreters.get_config(interp_id).check_multi_interp_extensions:
        return (
            'msgspec cannot load in this interpreter: it checks extension modules for '
            'multi-interpreter support (an isolated subinterpreter), and msgspec is single-phase'
        )
    return None
