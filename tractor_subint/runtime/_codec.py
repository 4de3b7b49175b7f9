"""How messages become bytes: one interface, chosen per actor.

The runtime only ever calls :meth:`Codec.encode` and :meth:`Codec.decode`.
msgpack through msgspec is the default; an actor that cannot load msgspec (an
isolated subinterpreter) gets another implementation behind the same
interface, named by :attr:`BootSpec.codec` (the boot spec itself is JSON, so
any interpreter can read which).
"""
from __future__ import annotations

from typing import Protocol

import msgspec

from ._msgs import Msg


class Codec(Protocol):
    """Turns :data:`Msg` values into frame bodies and back."""

    name: str
    """The key :func:`get_codec` knows this codec by."""

    def encode(self, msg: Msg) -> bytes:
        """The bytes of ``msg``; :class:`TypeError` naming what cannot be encoded."""
        ...

    def decode(self, data: bytes) -> Msg:
        """The message in ``data``."""
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
        return self._decoder.decode(data)


_CODECS = {'msgpack': MsgpackCodec}


def get_codec(name: str = 'msgpack') -> Codec:
    """A new codec instance by name."""
    try:
        return _CODECS[name]()
    except KeyError:
        raise ValueError(f'unknown codec {name!r}; known: {", ".join(_CODECS)}') from None
