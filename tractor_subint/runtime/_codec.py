"""How messages become bytes: one interface, chosen per actor.

The runtime only ever calls :meth:`Codec.encode` and :meth:`Codec.decode`.
msgpack through msgspec is the default; an actor that cannot load msgspec (an
isolated subinterpreter) gets another implementation behind the same
interface, named by :attr:`BootSpec.codec` (the boot spec itself is JSON, so
any interpreter can read which).
"""
from __future__ import annotations

import struct
from typing import Protocol

import msgspec

from ._msgs import Msg


class UndecodableValue(Exception):
    """A well-formed reply (:class:`Return` or :class:`Yield`) whose value
    does not decode here (e.g. nested too deep for the decoder). The frame
    was read whole, so the channel is still in step: only call ``cid``
    fails."""

    def __init__(self, cid: int, kind: str, cause: BaseException) -> None:
        self.cid = cid
        self.kind = kind
        self.cause = cause
        super().__init__(
            f'the value of a {kind} reply cannot be decoded here: {type(cause).__name__}: {cause}'
        )


class Codec(Protocol):
    """Turns :data:`Msg` values into frame bodies and back."""

    name: str
    """The key :func:`get_codec` knows this codec by."""

    def encode(self, msg: Msg) -> bytes:
        """The bytes of ``msg``; :class:`TypeError` naming what cannot be encoded."""
        ...

    def decode(self, data: bytes) -> Msg:
        """The message in ``data``; :class:`UndecodableValue` when only a
        reply's value is at fault; any other error for bytes that are not a
        message."""
        ...


class MsgpackCodec:
    """msgpack via msgspec; RPC arguments and results must be msgpack-able."""

    name = 'msgpack'

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Msg)

    def encode(self, msg: Msg) -> bytes:
        try:
            return self._encoder.encode(msg)
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(
                f'cannot send {type(msg).__name__} with the {self.name} codec: {exc} '
                f'(RPC arguments and results must be msgpack-serialisable)'
            ) from exc

    def decode(self, data: bytes) -> Msg:
        try:
            return self._decoder.decode(data)
        except Exception as exc:
            header = reply_header(data)
            if header is None:
                raise
            raise UndecodableValue(header[1], header[0], exc) from exc


_UINT_FORMATS = {0xCC: '>B', 0xCD: '>H', 0xCE: '>I', 0xCF: '>Q'}


def reply_header(data: bytes) -> tuple[str, int] | None:
    """``(tag, cid)`` of an encoded :class:`Return` or :class:`Yield`, read
    from its first fields alone, without touching its value (which may be
    what does not decode). msgspec writes a tagged struct as a map whose
    first entries are ``type`` and then the fields in order: ``cid`` comes
    before ``value``. None for anything else."""
    for tag in ('Return', 'Yield'):
        prefix = b'\x83\xa4type' + bytes([0xA0 | len(tag)]) + tag.encode() + b'\xa3cid'
        if data.startswith(prefix):
            rest = data[len(prefix):]
            if rest and rest[0] < 0x80:  # positive fixint
                return tag, rest[0]
            fmt = _UINT_FORMATS.get(rest[0]) if rest else None
            if fmt is not None and len(rest) > struct.calcsize(fmt):
                return tag, int(struct.unpack_from(fmt, rest, 1)[0])
    return None


_CODECS = {'msgpack': MsgpackCodec}


def get_codec(name: str = 'msgpack') -> Codec:
    """A new codec instance by name."""
    try:
        return _CODECS[name]()
    except KeyError:
        raise ValueError(f'unknown codec {name!r}; known: {", ".join(_CODECS)}') from None
