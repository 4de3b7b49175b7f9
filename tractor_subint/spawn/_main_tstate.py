"""Give a child forked from a worker thread a main thread that handles signals.

CPython 3.13+ flags "a signal arrived" on ``_PyRuntime.main_tstate``, the
thread state of the main thread of the main interpreter. A fork from any
other thread leaves that pointer on the parent's main thread, which does not
exist in the child: the forking thread becomes the child's main thread
(``_PyRuntime.main_thread`` is updated, the thread state pointer is not), so
its Python signal handlers run only when a blocking call returns EINTR
(``ai/conc-anal/fork_child_signal_handlers.md``).

:func:`adopt_main_tstate` repairs that in the child, as the first thing it
does: it points ``main_tstate`` at the surviving thread's state. The field is
found once in the parent (:func:`locate_main_tstate`, on the main thread):
the one word of ``_PyRuntime`` that holds the main thread's state and follows
the word holding the main thread's id (the two are declared together), or
nothing if that pattern is not found exactly once. The child writes only
where it reads its own thread id in the word before; otherwise nothing
changes and signals keep CPython's behaviour.
"""
from __future__ import annotations

import _interpreters
import threading
from typing import Any

_SEARCHED_WORDS = 1024
"""How much of ``_PyRuntime`` is searched: the field lies in its first KiB
(word 83 on 3.13.0, 105 on 3.14.10); the structure is far larger."""

_offset: int | None = None
"""Word index of ``_PyRuntime.main_tstate``, once located."""

_located: tuple[Any, Any] | None = None
"""The searched words of ``_PyRuntime`` and ``ctypes.pythonapi``, once located."""


def _api() -> Any:
    import ctypes

    api = ctypes.pythonapi
    api.PyThreadState_Get.restype = ctypes.c_void_p
    return api


def _runtime_words() -> Any:
    import ctypes

    base = ctypes.addressof(ctypes.c_char.in_dll(_api(), '_PyRuntime'))
    return (ctypes.c_size_t * _SEARCHED_WORDS).from_address(base)


def locate_main_tstate() -> int | None:
    """Where ``_PyRuntime.main_tstate`` is (a word index), if it can be
    told for sure. Searches on the main thread of the main interpreter
    only (elsewhere, returns what an earlier search found)."""
    global _offset, _located
    if (_offset is not None or threading.current_thread() is not threading.main_thread()
            or _interpreters.get_current() != _interpreters.get_main()):
        return _offset
    words, api = _runtime_words(), _api()
    tstate, ident = api.PyThreadState_Get(), threading.get_ident()
    found = [i for i in range(1, _SEARCHED_WORDS) if words[i] == tstate and words[i - 1] == ident]
    if len(found) == 1:
        _offset, _located = found[0], (words, api)
    return _offset


def adopt_main_tstate() -> bool:
    """In a child just forked from a non-main thread (its only thread):
    make CPython flag signals on this thread's state. True if it did."""
    if _offset is None or _located is None:
        return False
    # The search's view and API, inherited: a fork keeps every address, and
    # a child that made them again would pay for it on its way to its actor.
    words, api = _located
    if words[_offset - 1] != threading.get_ident():
        return False  # not the layout we located: change nothing
    words[_offset] = api.PyThreadState_Get()
    return True
