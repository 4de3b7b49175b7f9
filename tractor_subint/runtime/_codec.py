"""How messages become bytes: one interface, chosen per actor.

The runtime only ever calls :meth:`Codec.encode` and :meth:`Codec.decode`.
msgpack through msgspec is the default; an actor that cannot load msgspec (an
isolated subinterpreter) gets another implementation behind the same
interface, named by :attr:`BootSpec.codec` (the boot spec itself is JSON, so
any interpreter can read which).
"""
from __future__ import annotations

import dataclasses
import marshal
import struct
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from .._exceptions import TractorSubintError
from ._msgs import CALL_TAG, OPEN_CONTEXT_TAG, RETURN_TAG, STARTED_TAG, YIELD_TAG, Msg, from_wire, to_wire
from ._msgspec import refusal
from ._payloads import carry, ext_hook

# Imported up front wherever it loads, as before the codec became optional:
# a process that first imports an extension module on one thread while
# another thread forks (the warm pool's keeper does, at any time) can leave
# the child waiting forever on a lock held by a thread it does not have.
# An isolated subinterpreter refuses msgspec; there the runtime speaks marshal.
_MSGSPEC_MISSING = refusal() or ''
try:
    if _MSGSPEC_MISSING:
        raise ImportError(_MSGSPEC_MISSING)  # without paying for msgspec's Python half
    import msgspec
except ImportError as exc:
    msgspec = None  # type: ignore[assignment]
    _MSGSPEC_MISSING = str(exc)


class UndecodableValue(TractorSubintError):
    """A well-formed reply (:class:`Return` or :class:`Yield`) whose value,
    or a :class:`Call` whose arguments, do not decode here (e.g. nested too
    deep for the decoder). The frame was read whole, so the channel is still
    in step: only call ``cid`` fails."""

    def __init__(self, cid: int, kind: str, cause: BaseException) -> None:
        self.cid = cid
        self.kind = kind
        self.cause = cause
        what = 'the arguments of a Call' if kind == 'Call' else f'the value of a {kind} reply'
        super().__init__(f'{what} cannot be decoded here: {type(cause).__name__}: {cause}')


class Codec(Protocol):
    """Turns :data:`Msg` values into frame bodies and back."""

    name: str
    """The key :func:`get_codec` knows this codec by."""

    def encode(self, msg: Msg) -> bytes:
        """The bytes of ``msg``; :class:`TypeError` naming what cannot be encoded."""
        ...

    def decode(self, data: bytes | memoryview) -> Msg:
        """The message in ``data``; :class:`UndecodableValue` when only a
        reply's value is at fault; any other error for bytes that are not a
        message."""
        ...


class _ListCodec:
    """A codec that turns the message's wire list (``_msgs.to_wire``) into
    bytes with ``_dump`` and back with ``_load``; subclasses say how."""

    name: str
    _carries: str
    """What RPC values may be, for the error message."""
    _dump_errors: tuple[type[Exception], ...] = (TypeError, ValueError)

    def _dump(self, wire: list[object]) -> bytes:
        raise NotImplementedError

    def _load(self, data: bytes | memoryview) -> list[object]:
        raise NotImplementedError

    def _reply_header(self, data: bytes | memoryview) -> tuple[str, int] | None:
        raise NotImplementedError

    def encode(self, msg: Msg) -> bytes:
        try:
            return self._dump(to_wire(msg))
        except self._dump_errors as exc:
            raise TypeError(
                f'cannot send {type(msg).__name__} with the {self.name} codec: {exc} '
                f'(RPC arguments and results must be {self._carries})'
            ) from exc

    def decode(self, data: bytes | memoryview) -> Msg:
        try:
            return from_wire(self._load(data))
        except Exception as exc:
            header = self._reply_header(data)
            if header is None:
                raise
            raise UndecodableValue(header[1], header[0], exc) from exc


class MsgpackCodec(_ListCodec):
    """msgpack via msgspec (the default); RPC arguments and results must be
    msgpack-able. Where msgspec cannot load (an isolated subinterpreter) the
    runtime still does, and speaks :class:`MarshalCodec`."""

    name = 'msgpack'
    _carries = 'msgpack-serialisable'

    def __init__(self) -> None:
        if msgspec is None:
            raise ImportError(
                f'the msgpack codec needs msgspec, which does not load here: {_MSGSPEC_MISSING}'
            )
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(list, ext_hook=ext_hook)
        # RecursionError: nested deeper than the encoder goes (3.13).
        self._dump_errors = (TypeError, msgspec.EncodeError, RecursionError)

    def _dump(self, wire: list[object]) -> bytes:
        for position in _PAYLOADS.get(wire[0], ()):
            wire[position] = carry(wire[position])  # sets and registered types keep theirs
        return self._encoder.encode(wire)

    def _load(self, data: bytes | memoryview) -> list[object]:
        return self._decoder.decode(data)

    def _reply_header(self, data: bytes | memoryview) -> tuple[str, int] | None:
        return msgpack_reply_header(data)


class MarshalCodec(_ListCodec):
    """The stdlib's ``marshal``: loads in every interpreter, isolated ones
    included (where msgspec cannot). It carries what msgpack does (None,
    bool, int, float, str, bytes, lists, dicts) plus tuples and sets; both
    ends must be the same Python version, which actors of one process are."""

    name = 'marshal'
    _carries = 'plain data'

    def _dump(self, wire: list[object]) -> bytes:
        try:
            return marshal.dumps(wire, _MARSHAL_VERSION)
        except ValueError as exc:
            culprit = _unmarshallable(wire) if str(exc) == 'unmarshallable object' else None
            if culprit is None:
                raise
            raise ValueError(_cannot_cross(culprit)) from None

    def _load(self, data: bytes | memoryview) -> list[object]:
        loaded = marshal.loads(data)
        if not isinstance(loaded, list):
            raise TypeError(f'a message is a list, not {type(loaded).__name__}')
        return loaded

    def _reply_header(self, data: bytes | memoryview) -> tuple[str, int] | None:
        return marshal_reply_header(data)


def _cannot_cross(kind: type) -> str:
    """What to tell a user whose value holds a ``kind``, which marshal refuses."""
    name = f'{kind.__module__}.{kind.__qualname__}'
    text = f'a {name} cannot cross the marshal codec (an in-process subint actor\'s channel)'
    record = dataclasses.is_dataclass(kind) or any(c.__name__ == 'Struct' for c in kind.__mro__[1:])
    if record:
        return (
            f'{text}: send its fields (dataclasses.asdict, msgspec.structs.asdict) and rebuild it '
            f"there, or spawn the actor with a backend whose channels speak msgpack, which carries "
            f"records ('trio', 'main_thread_forkserver', 'subint_forkserver'; a 'subint' actor "
            f"speaks marshal in legacy interpreters too)"
        )
    return f'unmarshallable object of type {kind.__qualname__}: {text}'


def _unmarshallable(value: object) -> type | None:
    """The first type in ``value`` that marshal refuses (it says only
    "unmarshallable object"), or None if none is found."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)  # marshal takes exact types: an IntEnum is not an int to it
        if kind in (list, tuple, set, frozenset):
            pending.extend(cast('Iterable[object]', item))
        elif kind is dict:
            pending.extend(cast('dict[object, object]', item).items())
        elif kind not in _MARSHAL_SCALARS:
            return kind
    return None


_MARSHAL_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray, memoryview)
_MARSHAL_VERSION = 2
"""Without back-references (version 3+ writes a repeated object as a
reference), so a reply's first items always have one layout."""

_UINT_FORMATS = {0xCC: '>B', 0xCD: '>H', 0xCE: '>I', 0xCF: '>Q'}
_REPLY_KINDS = {
    RETURN_TAG: 'Return', YIELD_TAG: 'Yield', CALL_TAG: 'Call',
    OPEN_CONTEXT_TAG: 'OpenContext', STARTED_TAG: 'Started',
}
_WIRE_LENGTHS = {RETURN_TAG: 3, YIELD_TAG: 3, CALL_TAG: 7, OPEN_CONTEXT_TAG: 7, STARTED_TAG: 3}
"""How many items each kind's wire list has (its tag included)."""


def msgpack_reply_header(data: bytes | memoryview) -> tuple[str, int] | None:
    """``(kind, cid)`` of a msgpack-encoded :class:`Return`, :class:`Yield`
    or :class:`Call`, read from its first items alone, without touching its
    value or arguments (which may be what does not decode): ``[tag, cid,
    ...]`` is a fixarray whose first item is a positive fixint. None for
    anything else."""
    if len(data) < 3 or data[1] not in _REPLY_KINDS or data[0] != 0x90 | _WIRE_LENGTHS[data[1]]:
        return None
    kind, rest = _REPLY_KINDS[data[1]], data[2:]
    if rest[0] < 0x80:  # positive fixint
        return kind, rest[0]
    fmt = _UINT_FORMATS.get(rest[0])
    if fmt is not None and len(rest) > struct.calcsize(fmt):
        return kind, int(struct.unpack_from(fmt, rest, 1)[0])
    return None


def marshal_reply_header(data: bytes | memoryview) -> tuple[str, int] | None:
    """:func:`msgpack_reply_header` for :class:`MarshalCodec`: a list
    (``[`` and a little-endian int32 count) whose first two items are
    marshal ints (``i`` and an int32) before the rest."""
    if len(data) < 15 or data[0] != ord('[') or data[5] != ord('i') or data[10] != ord('i'):
        return None
    count = struct.unpack_from('<i', data, 1)[0]
    tag, cid = struct.unpack_from('<i', data, 6)[0], struct.unpack_from('<i', data, 11)[0]
    kind = _REPLY_KINDS.get(tag)
    return None if kind is None or count != _WIRE_LENGTHS[tag] else (kind, cid)


_PAYLOADS: dict[object, tuple[int, ...]] = {
    RETURN_TAG: (2,), YIELD_TAG: (2,), STARTED_TAG: (2,), CALL_TAG: (4,), OPEN_CONTEXT_TAG: (4,),
}
"""Where a message's user values sit in its wire list (after the tag): the
only places a set or a registered record may be."""

_CODECS: dict[str, Callable[[], Codec]] = {'msgpack': MsgpackCodec, 'marshal': MarshalCodec}


def codec_for_channel(preferred: str) -> str:
    """The codec a parent here and its new child will speak: ``preferred``
    (the child's backend's) if it loads in this interpreter, else
    ``marshal``, which loads everywhere (an isolated subinterpreter cannot
    load msgspec). The boot spec carries the choice, so both ends agree."""
    if preferred == 'msgpack' and msgspec is None:
        return 'marshal'
    return preferred


def get_codec(name: str = 'msgpack') -> Codec:
    """A new codec instance by name."""
    try:
        return _CODECS[name]()
    except KeyError:
        raise ValueError(f'unknown codec {name!r}; known: {", ".join(_CODECS)}') from None
