"""The messages actors exchange: frozen dataclasses, stdlib only.

Parent -> child: :class:`Call`, :class:`OpenContext`, :class:`Credit`,
:class:`CancelCall`, :class:`CancelActor`.
Child -> parent: :class:`Ready` or :class:`BootFailed` (once, first), then
:class:`Return`, :class:`Yield`, :class:`StreamEnd`, :class:`Failed`,
:class:`Started` (each tagged with the ``cid`` of the call it answers) and
:class:`CancelAck`. A context (:class:`OpenContext`) is two-way: both sides
send its :class:`Yield`, :class:`Credit` and :class:`StreamEnd`.

Plain dataclasses, so that the runtime loads where msgspec cannot (an
isolated subinterpreter refuses it). On the wire a message is a list: its
type's index in :data:`MESSAGE_TYPES`, then its fields in order
(:func:`to_wire`, :func:`from_wire`); each codec (``_codec``) turns that
list into bytes its own way. The child's boot payload is not a message: see
``_bootspec``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, cast

from ._bootspec import Uid


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception, boxed for the wire.

    Type names are qualified the way tracebacks print them: ``module.Qualname``,
    the bare ``Qualname`` for builtins.
    """

    type_name: str
    message: str
    traceback: str
    src_uid: Uid
    """The actor where the original error was raised (deepest in a chain)."""
    src_type_name: str
    """The original error's type name (deepest in a chain)."""
    actor_uid: Uid
    """The actor that boxed this error (the one answering the call)."""
    args: tuple[Any, ...] | None = None
    """The original error's ``args``, when they are plain data (None if not)."""
    attrs: dict[str, Any] = field(default_factory=dict)
    """The original error's ``__dict__`` entries that are plain data."""
    canceller: Uid | None = None
    """For a context cancelled on request: the actor that asked."""


@dataclass(frozen=True, slots=True)
class Ready:
    uid: Uid
    pid: int


@dataclass(frozen=True, slots=True)
class BootFailed:
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class Call:
    cid: int
    module: str
    qualname: str
    kwargs: dict[str, Any]
    stream: bool = False
    window: int = 0
    """For a stream: how many items the child may send ahead of the
    parent's :class:`Credit` (0: no flow control)."""


@dataclass(frozen=True, slots=True)
class Credit:
    """The parent consumed ``n`` more items of stream ``cid``: the child may
    send ``n`` more."""

    cid: int
    n: int


@dataclass(frozen=True, slots=True)
class CancelCall:
    cid: int


@dataclass(frozen=True, slots=True)
class CancelActor:
    pass


@dataclass(frozen=True, slots=True)
class CancelAck:
    pass


@dataclass(frozen=True, slots=True)
class Return:
    cid: int
    value: Any


@dataclass(frozen=True, slots=True)
class Yield:
    cid: int
    value: Any


@dataclass(frozen=True, slots=True)
class StreamEnd:
    cid: int


@dataclass(frozen=True, slots=True)
class Failed:
    cid: int
    error: ErrorInfo


@dataclass(frozen=True, slots=True)
class OpenContext:
    """Start the context function ``module.qualname(ctx, **kwargs)``: a task
    linked to the caller's (``caller_uid``) until either side ends it.

    The context's messages, in both directions, carry its ``cid``: the
    callee answers :class:`Started` once, then :class:`Return` or
    :class:`Failed` last; in between both sides may send :class:`Yield`
    (stream items), :class:`Credit` (flow control: each side starts with
    ``window`` credit for the other's items, and grants more as it reads)
    and :class:`StreamEnd` (this side closed its stream). The caller sends
    :class:`CancelCall` to cancel the callee's task, which then answers
    :class:`Failed` with ``canceller`` set (a ``ContextCancelled``).
    """

    cid: int
    module: str
    qualname: str
    kwargs: dict[str, Any]
    caller_uid: Uid
    window: int


@dataclass(frozen=True, slots=True)
class Started:
    """The callee's ``ctx.started(value)``: the caller's ``open_context()``
    enters with ``value``."""

    cid: int
    value: Any


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each end of a peer channel sends (``_discovery``):
    who it is, and the codecs it speaks (it is itself sent in marshal, which
    every interpreter reads)."""

    uid: Uid
    pid: int
    codecs: list[str]


Msg = (
    Ready | BootFailed | Call | Credit | CancelCall | CancelActor | CancelAck
    | Return | Yield | StreamEnd | Failed | OpenContext | Started | Hello
)

MESSAGE_TYPES: tuple[type[Msg], ...] = (
    Ready, BootFailed, Call, Credit, CancelCall, CancelActor, CancelAck,
    Return, Yield, StreamEnd, Failed, OpenContext, Started, Hello,
)
"""The wire tag of a message is its type's index here: append, never reorder."""

_TAGS: dict[type[Msg], int] = {cls: tag for tag, cls in enumerate(MESSAGE_TYPES)}
CALL_TAG = _TAGS[Call]
RETURN_TAG = _TAGS[Return]
YIELD_TAG = _TAGS[Yield]
OPEN_CONTEXT_TAG = _TAGS[OpenContext]
STARTED_TAG = _TAGS[Started]


def _uid(value: Sequence[str]) -> Uid:
    name, uuid_hex = value
    if not (isinstance(name, str) and isinstance(uuid_hex, str)):
        raise TypeError(f'an actor uid is two strings, not {value!r}')
    return (name, uuid_hex)


def _error_info(value: Sequence[Any]) -> ErrorInfo:
    type_name, message, traceback, src_uid, src_type_name, actor_uid, args, attrs, canceller = value
    if not isinstance(attrs, dict):
        raise TypeError(f'error attributes are a dict, not {type(attrs).__name__}')
    return ErrorInfo(
        type_name, message, traceback, _uid(src_uid), src_type_name, _uid(actor_uid),
        None if args is None else tuple(args), attrs,
        None if canceller is None else _uid(canceller),
    )


_FIELD_NAMES: dict[type[Msg], tuple[str, ...]] = {
    cls: tuple(field.name for field in fields(cls)) for cls in MESSAGE_TYPES
}


def _ready(uid: Sequence[str], pid: int) -> Ready:
    return Ready(_uid(uid), pid)


def _boot_failed(error: Sequence[Any]) -> BootFailed:
    return BootFailed(_error_info(error))


def _failed(cid: int, error: Sequence[Any]) -> Failed:
    return Failed(cid, _error_info(error))


def _call(cid: int, module: str, qualname: str, kwargs: Any, stream: bool, window: int) -> Call:
    if not isinstance(kwargs, dict):
        raise TypeError(f'Call kwargs must be a dict, not {type(kwargs).__name__}')
    return Call(cid, module, qualname, kwargs, stream, window)


def _open_context(
    cid: int, module: str, qualname: str, kwargs: Any, caller_uid: Sequence[str], window: int,
) -> OpenContext:
    if not isinstance(kwargs, dict):
        raise TypeError(f'OpenContext kwargs must be a dict, not {type(kwargs).__name__}')
    return OpenContext(cid, module, qualname, kwargs, _uid(caller_uid), window)


def _hello(uid: Sequence[str], pid: int, codecs: Any) -> Hello:
    if not isinstance(codecs, list) or not all(isinstance(c, str) for c in codecs):
        raise TypeError(f'Hello codecs are a list of names, not {codecs!r}')
    return Hello(_uid(uid), pid, codecs)


_SPECIAL_BUILDERS: dict[type[Msg], Callable[..., Msg]] = {
    Ready: _ready, BootFailed: _boot_failed, Failed: _failed, Call: _call,
    OpenContext: _open_context, Hello: _hello,
}
_BUILDERS: tuple[Callable[..., Msg], ...] = tuple(
    _SPECIAL_BUILDERS.get(cls, cls) for cls in MESSAGE_TYPES
)
"""How :func:`from_wire` rebuilds each type from its fields: the class
itself, or a function for fields a codec hands back in a more generic form
(lists for tuples and nested records)."""


def _error_fields(info: ErrorInfo) -> tuple[Any, ...]:
    return (
        info.type_name, info.message, info.traceback, info.src_uid, info.src_type_name,
        info.actor_uid, info.args, info.attrs, info.canceller,
    )


def _field_getter(cls: type[Msg]) -> Callable[[Msg], tuple[Any, ...]]:
    """A function giving the fields of a ``cls`` message as a tuple (fast:
    ``operator.attrgetter``)."""
    names = _FIELD_NAMES[cls]
    if not names:
        return lambda msg: ()
    if len(names) == 1:
        get_one = attrgetter(names[0])
        return lambda msg: (get_one(msg),)
    return cast('Callable[[Msg], tuple[Any, ...]]', attrgetter(*names))


def _error_index(cls: type[Msg]) -> int:
    names = _FIELD_NAMES[cls]
    return names.index('error') + 1 if 'error' in names else 0


_WIRE: dict[type[Msg], tuple[int, Callable[[Msg], tuple[Any, ...]], int]] = {
    cls: (_TAGS[cls], _field_getter(cls), _error_index(cls)) for cls in MESSAGE_TYPES
}
"""Per type: its tag, its fields' getter, and the wire index of an
:class:`ErrorInfo` field (0: none)."""

def to_wire(msg: Msg) -> list[Any]:
    """``[tag, field, ...]``, the values as they are (not copied); a nested
    :class:`ErrorInfo` as a tuple of its fields."""
    tag, get_fields, error_index = _WIRE[type(msg)]
    wire = [tag, *get_fields(msg)]
    if error_index:
        wire[error_index] = _error_fields(wire[error_index])
    return wire


def from_wire(items: Sequence[Any]) -> Msg:
    """The message :func:`to_wire` made ``items`` of; ``TypeError`` or
    ``ValueError`` for anything else."""
    tag = items[0] if items else None
    if type(tag) is not int or not 0 <= tag < len(_BUILDERS):
        raise ValueError(f'a message is a list starting with a known type tag, not {items[:1]!r}')
    return _BUILDERS[tag](*items[1:])
