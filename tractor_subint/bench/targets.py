"""RPC targets of the benchmark's actors (they import this module)."""
from __future__ import annotations

import sys

from ..runtime._context import Context, context


def echo(x: int) -> int:
    return x


def loaded_modules() -> list[str]:
    """Every module this actor's interpreter holds (``bench --imports``)."""
    return sorted(sys.modules)


def spin(n: int) -> int:
    """Pure-Python CPU work (holds its interpreter's GIL throughout)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


@context
async def echo_ctx(ctx: Context, x: int) -> int:
    """A context that starts with ``x`` and returns it."""
    await ctx.started(x)
    return x


@context
async def stream_out(ctx: Context, n: int) -> None:
    """Sends ``0 .. n-1`` on a stream, as fast as the stream takes them."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)


@context
async def stream_echo(ctx: Context) -> None:
    """Echoes every item of a two-way stream until the caller closes it."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for item in stream:
            await stream.send(item)
