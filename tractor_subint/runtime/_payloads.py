"""Payloads keep their types across actors, or fail saying why.

msgpack has no sets and no records: left alone, msgspec writes a ``set`` as
an array (it arrives as a ``list``) and a dataclass or ``msgspec.Struct`` as
a map (it arrives as a ``dict``), silently. So, on the msgpack path:

- a ``set`` or ``frozenset`` travels as an extension type (:func:`carry`) and
  arrives as itself (:func:`ext_hook`);
- an instance of a *registered* type (:func:`register_payload_type`: a
  dataclass or Struct) travels tagged with its type's name and arrives as
  that type, where it is registered too (else the value fails to decode,
  saying so);
- a dataclass or Struct *named in an annotation* arrives as its type: a
  parameter's (in the callee), a result's (in the caller), a stream's item
  type (``AsyncIterator[T]``), a context's ``pld_spec`` (both ways), checked
  and converted by msgspec (:func:`convert`; a mismatch is
  :class:`MsgTypeError`). A set nested in such a record follows its field's
  annotation.

The marshal path (isolated subinterpreters) carries sets as they are and
refuses records, naming the type and what to do (``_codec``).
"""
from __future__ import annotations

import dataclasses
import functools
import gc
import sys
import typing
from typing import Any

from ..spawn._recycle_hooks import forget_on_recycle
from ._errors import MsgTypeError, qualified_type_name
from ._msgspec import refusal

try:
    if refusal():
        raise ImportError  # without paying for msgspec's Python half
    import msgspec
except ImportError:  # an isolated subinterpreter: the marshal path only
    msgspec = None  # type: ignore[assignment]

SET_EXT, FROZENSET_EXT, TYPED_EXT = 1, 2, 3
"""msgpack extension codes of what :func:`carry` wraps."""

_SCALARS = frozenset({type(None), bool, int, float, str, bytes, bytearray, memoryview})
_CONTAINERS = frozenset({list, tuple, dict})
_WALKED = _SCALARS | _CONTAINERS

_registered: dict[str, type] = {}
_registered_kinds: set[type] = set()



def register_payload_type[T: type](cls: T) -> T:
    """Make instances of ``cls`` (a dataclass or ``msgspec.Struct``) arrive
    as ``cls`` wherever they are sent, annotated or not. Both ends must
    register it (its module does, when both import it). Usable as a class
    decorator."""
    if not (dataclasses.is_dataclass(cls) or _is_struct_type(cls)):
        raise TypeError(f'{cls!r} is neither a dataclass nor a msgspec.Struct')
    _registered[qualified_type_name(cls)] = cls
    _registered_kinds.add(cls)
    return cls


def _is_struct_type(cls: object) -> bool:
    return msgspec is not None and isinstance(cls, type) and issubclass(cls, msgspec.Struct)


# -- the msgpack path: sets and registered types as extension types --------------------

def carry(value: Any) -> Any:
    """``value`` with its sets and registered instances wrapped for msgpack;
    ``value`` itself (not a copy) when it holds none (found by a scan that
    copies nothing: the common case costs a look at each item's type)."""
    return _carry(value) if _holds_special(value) else value


def _holds_special(value: Any) -> bool:
    """Whether ``value`` holds a set or a registered instance, in itself or
    in its lists, tuples and dicts (records are not looked into). One level
    of the structure at a time, in C (``gc.get_referents``: the items of a
    list or tuple, the keys and values of a dict)."""
    kind = type(value)
    if kind in _SCALARS:
        return False
    level: list[Any] = value if kind is list else [value]
    while level:
        kinds = set(map(type, level))
        if kinds <= _SCALARS:
            return False
        if set in kinds or frozenset in kinds or not kinds.isdisjoint(_registered_kinds):
            return True
        if not kinds <= _WALKED:
            level = [item for item in level if type(item) in _CONTAINERS]
        level = gc.get_referents(*level)
    return False


def _carry(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        if set(map(type, value)) <= _SCALARS:
            return value
        items = [_carry(item) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if kind is list else tuple(items)
    if kind is dict:
        if set(map(type, value.values())) <= _SCALARS:
            return value
        carried = {key: _carry(item) for key, item in value.items()}
        if all(carried[key] is item for key, item in value.items()):
            return value
        return carried
    if kind is set or kind is frozenset:
        code = SET_EXT if kind is set else FROZENSET_EXT
        return msgspec.msgpack.Ext(code, _encode(_carry(list(value))))
    name = qualified_type_name(kind)
    if _registered.get(name) is kind:
        fields = msgspec.to_builtins(value, builtin_types=(bytes, bytearray, memoryview))
        return msgspec.msgpack.Ext(TYPED_EXT, _encode([name, fields]))
    return value  # msgspec writes it (a Struct or dataclass as a map) or says why not


@functools.cache
def _codec() -> tuple[Any, Any]:
    return msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(ext_hook=ext_hook)


def _encode(value: Any) -> bytes:
    encoded: bytes = _codec()[0].encode(value)
    return encoded


def ext_hook(code: int, data: memoryview) -> Any:
    """The msgpack decoder's hook: undo :func:`carry`."""
    value = _codec()[1].decode(data)
    if code == SET_EXT:
        return set(value)
    if code == FROZENSET_EXT:
        return frozenset(value)
    if code == TYPED_EXT:
        name, fields = value
        cls = _registered.get(name)
        if cls is None:
            raise TypeError(
                f'a {name} arrived, a registered payload type where it was sent, but not '
                f'here: register it (register_payload_type) in this actor too'
            )
        return msgspec.convert(fields, cls)
    raise TypeError(f'unknown msgpack extension type {code}')


# -- annotations: what a value is declared to be ---------------------------------------

@functools.lru_cache(maxsize=1024)
def _hints(fn: object) -> dict[str, Any]:
    target = inspect_unwrap(fn)
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}  # annotations that do not resolve here: no conversion


@forget_on_recycle
def _forget_the_last_actor() -> None:
    # This interpreter hosts another actor next (an in-process actor's,
    # recycled): the hints of the last one's functions go, and so do the
    # types it registered whose modules were dropped (or live in __main__),
    # as they would with a fresh interpreter. Both would keep its modules alive.
    for cached in (_hints, result_hint, item_hint, param_hints):
        cached.cache_clear()
    for name, cls in list(_registered.items()):
        if cls.__module__ == '__main__' or sys.modules.get(cls.__module__) is None:
            del _registered[name]
            _registered_kinds.discard(cls)


def inspect_unwrap(fn: object) -> object:
    while hasattr(fn, '__wrapped__'):
        fn = fn.__wrapped__
    return fn


def _is_typed(hint: Any) -> bool:
    """Whether ``hint`` names a record (dataclass or Struct) anywhere: only
    then is a value converted (others pass as they came, as before)."""
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or _is_struct_type(hint)):
        return True
    return any(_is_typed(arg) for arg in typing.get_args(hint))


def typed_hint(hint: Any) -> Any:
    """``hint`` if values declared so are converted, else None."""
    return hint if msgspec is not None and hint is not None and _is_typed(hint) else None


@functools.lru_cache(maxsize=1024)
def result_hint(fn: object) -> Any:
    """The declared type of what ``fn`` returns, if it names a record."""
    return typed_hint(_hints(fn).get('return'))


@functools.lru_cache(maxsize=1024)
def item_hint(fn: object) -> Any:
    """The declared item type of the async generator ``fn``
    (``AsyncIterator[T]``, ``AsyncGenerator[T, ...]``), if it names a record."""
    hint = _hints(fn).get('return')
    args = typing.get_args(hint)
    return typed_hint(args[0]) if args else None


@functools.lru_cache(maxsize=1024)
def param_hints(fn: object) -> dict[str, Any]:
    """The parameters of ``fn`` whose declared types name a record."""
    hints = dict(_hints(fn))
    hints.pop('return', None)
    return {name: hint for name, hint in hints.items() if typed_hint(hint) is not None}


def convert(value: Any, hint: Any, what: str) -> Any:
    """``value`` as ``hint`` declares it (None: as it is); a mismatch is a
    :class:`MsgTypeError` naming ``what``."""
    if hint is None:
        return value
    try:
        return msgspec.convert(value, hint)
    except msgspec.ValidationError as exc:
        raise MsgTypeError(f'{what} is not a {_hint_text(hint)}: {exc}') from None


def check(value: Any, spec: Any, what: str) -> None:
    """Refuse, before it is sent, a value that is not a ``spec``
    (a ``pld_spec``): :class:`MsgTypeError`."""
    if spec is None or msgspec is None:
        return
    convert(value, spec, what)


def convert_kwargs(fn: object, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with each argument whose parameter names a record
    converted to it."""
    hints = param_hints(fn)
    if not hints:
        return kwargs
    return {
        name: convert(value, hints.get(name), f'argument {name!r}') for name, value in kwargs.items()
    }


def _hint_text(hint: Any) -> str:
    # Only a class's own name: on 3.14 ``Point | None`` is a ``typing.Union``
    # whose ``__qualname__`` is just 'Union'.
    return hint.__qualname__ if isinstance(hint, type) else repr(hint)

