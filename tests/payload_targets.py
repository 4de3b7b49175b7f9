"""Targets for the typed-payload tests (issue 18, item 4). Imports msgspec:
under ``subint`` the tests spawn these actors with ``interpreter='legacy'``."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import msgspec
import trio

import tractor_subint as ts


@dataclass
class Order:
    item: str
    qty: int
    tags: set[str]


class Point(msgspec.Struct):
    x: int
    y: int


@ts.register_payload_type
@dataclass
class Tagged:
    """Registered: arrives as itself, annotated or not."""

    label: str
    parts: frozenset[int]


def make_order(item: str, qty: int) -> Order:
    return Order(item, qty, {'fast', 'fragile'})


def order_qty(order: Order, where: Point | None = None) -> list[object]:
    """Checks, here, that its arguments arrived as their types."""
    assert type(order) is Order, type(order)
    assert type(order.tags) is set, type(order.tags)
    assert where is None or type(where) is Point, type(where)
    return [order.qty, type(order).__name__, type(where).__name__]


def echo(value: object) -> object:
    return value


def type_names(value: object) -> object:
    """The type of ``value`` and, for a container, of what it holds, as
    this actor sees them."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [type_names(v) for v in value]]
    if isinstance(value, dict):
        return [type(value).__name__, {k: type_names(v) for k, v in value.items()}]
    return type(value).__name__


async def points(n: int) -> AsyncIterator[Point]:
    for i in range(n):
        yield Point(i, -i)
        await trio.lowlevel.checkpoint()


def wrong_result() -> Point:
    return 'not a point'  # type: ignore[return-value]


@ts.context(pld_spec=Point | None)
async def point_doubler(ctx: ts.Context) -> str:
    try:
        await ctx.started('this is no Point')
    except ts.MsgTypeError as exc:
        refused = str(exc)
    else:
        refused = ''
    await ctx.started(Point(0, 0))
    async with ctx.open_stream() as stream:
        async for pt in stream:
            assert type(pt) is Point
            await stream.send(Point(pt.x * 2, pt.y * 2))
    return refused
