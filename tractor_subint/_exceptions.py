"""The base of every error this package raises, and the errors every layer shares.

Stdlib only and import-free, because every kind of process of a tree loads it:
the forkserver (no trio), a fresh or isolated subinterpreter, an exec'd child.

Public errors are defined where they are raised (``runtime._errors``,
``spawn._subint_host``, ...) and exported by the top-level package, and each
says so in its class body (``__module__ = PUBLIC_MODULE``): a traceback then
names ``tractor_subint.ActorFailure``, the name a user imports and catches,
not the private module that happens to define it (trio does the same).
"""
from __future__ import annotations

PUBLIC_MODULE = 'tractor_subint'
"""The ``__module__`` of every error exported by the top-level package."""


class TractorSubintError(Exception):
    """Base class of the errors raised by ``tractor_subint`` itself.

    ``except tractor_subint.TractorSubintError`` catches what the package
    raises about actors, spawning and its wire formats. It does not catch
    errors it only passes on (a ``TypeError`` about a bad argument, a
    ``KeyboardInterrupt``, trio's ``Cancelled``). Errors that have always
    been a ``RuntimeError`` (``SubintExecError``, ``ForkserverError``, ...)
    still are one.
    """

    __module__ = PUBLIC_MODULE


class ProtocolError(TractorSubintError):
    """A peer broke a wire format (a frame's size, its encoding, the fds
    attached to it): nothing after it on that connection can be trusted, so
    the connection is dropped. Raised by an actor's channel and by the
    forkserver's."""

    __module__ = PUBLIC_MODULE
