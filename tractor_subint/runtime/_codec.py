"""How messages become bytes: one interface, chosen per actor.

The runtime only ever calls :meth:`Codec.encode` and :meth:`Codec.decode`.
msgpack through msgspec is the default; an actor that cannot load msgspec (an
isolated subinterpreter, a later backend) will get another implementation
behind the same interface, named in its boot spec.
"""
from __future__ import annotations

from typing import Protocol

import msgspec

from ._msgs import BootSpec, Msg


class Codec(Protocol):
    name: str

    def encode(self, msg: Msg) -> bytes: ...

    def decode(self, data: bytes) -> Msg: ...


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
    try:
        return _CODECS[name]()
    except KeyError:
        raise ValueError(f'unknown codec {name!r}; known: {", ".join(_CODECS)}') from None


def encode_boot_spec(spec: BootSpec) -> bytes:
    return msgspec.msgpack.encode(spec)


def decode_boot_spec(data: bytes) -> BootSpec:
    return msgspec.msgpack.decode(data, type=BootSpec)
