"""The messages actors exchange, as ``msgspec.Struct`` types.

Parent -> child: :class:`Call`, :class:`Credit`, :class:`CancelCall`,
:class:`CancelActor`.
Child -> parent: :class:`Ready` or :class:`BootFailed` (once, first), then
:class:`Return`, :class:`Yield`, :class:`StreamEnd`, :class:`Failed` (each
tagged with the ``cid`` of the call it answers) and :class:`CancelAck`.

The child's boot payload is not a message: see ``_bootspec``.
"""
from __future__ import annotations

from typing import Any

import msgspec

from ._bootspec import Uid


class ErrorInfo(msgspec.Struct, frozen=True):
    """An exception, boxed for the wire."""

    type_name: str
    message: str
    traceback: str
    src_uid: Uid
    """The actor where the original error was raised (deepest in a chain)."""
    src_type_name: str
    """The original error's type name (deepest in a chain)."""
    actor_uid: Uid
    """The actor that boxed this error (the one answering the call)."""


class Ready(msgspec.Struct, tag=True, frozen=True):
    uid: Uid
    pid: int


class BootFailed(msgspec.Struct, tag=True, frozen=True):
    error: ErrorInfo


class Call(msgspec.Struct, tag=True, frozen=True):
    cid: int
    module: str
    qualname: str
    kwargs: dict[str, Any]
    stream: bool = False
    window: int = 0
    """For a stream: how many items the child may send ahead of the
    parent's :class:`Credit` (0: no flow control)."""


class Credit(msgspec.Struct, tag=True, frozen=True):
    """The parent consumed ``n`` more items of stream ``cid``: the child may
    send ``n`` more."""

    cid: int
    n: int


class CancelCall(msgspec.Struct, tag=True, frozen=True):
    cid: int


class CancelActor(msgspec.Struct, tag=True, frozen=True):
    pass


class CancelAck(msgspec.Struct, tag=True, frozen=True):
    pass


class Return(msgspec.Struct, tag=True, frozen=True):
    cid: int
    value: Any


class Yield(msgspec.Struct, tag=True, frozen=True):
    cid: int
    value: Any


class StreamEnd(msgspec.Struct, tag=True, frozen=True):
    cid: int


class Failed(msgspec.Struct, tag=True, frozen=True):
    cid: int
    error: ErrorInfo


Msg = (
    Ready | BootFailed | Call | Credit | CancelCall | CancelActor | CancelAck
    | Return | Yield | StreamEnd | Failed
)

