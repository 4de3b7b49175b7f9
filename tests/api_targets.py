"""Module-level targets for the tests of tractor's core API (issue 18):
call cancellation, contexts and two-way streams, typed errors and payloads.

Importable as ``api_targets`` in every actor (``tests/`` is on ``sys.path``).
State kept here lives per actor (each actor imports its own copy), and the
functions that read it run in the actor, so the assertions they make are
made where the tasks ran.
"""
from __future__ import annotations

import trio

import tractor_subint as ts

# -- call cancellation -----------------------------------------------------------

_tracked: dict[str, dict[int, str]] = {}
_changed = trio.Event()
_released: dict[str, trio.Event] = {}


def _notify() -> None:
    global _changed
    _changed.set()
    _changed = trio.Event()


def _release_event(key: str) -> trio.Event:
    return _released.setdefault(key, trio.Event())


async def tracked_call(key: str, index: int) -> int:
    """Run until :func:`release_tracked` (then return ``index``) or until
    cancelled; record which, under ``key``."""
    states = _tracked.setdefault(key, {})
    states[index] = 'running'
    _notify()
    try:
        await _release_event(key).wait()
    except trio.Cancelled:
        states[index] = 'cancelled'
        _notify()
        raise
    states[index] = 'finished'
    _notify()
    return index


async def wait_tracked(key: str, state: str, count: int) -> dict[int, str]:
    """Wait until ``count`` calls under ``key`` are in ``state``; return
    every call's state (the test bounds the wait)."""
    while sum(1 for s in _tracked.get(key, {}).values() if s == state) < count:
        await _changed.wait()
    return dict(_tracked[key])


def release_tracked(key: str) -> None:
    _release_event(key).set()


def tracked_states(key: str) -> dict[int, str]:
    return dict(_tracked.get(key, {}))


# -- typed errors ------------------------------------------------------------------

class QuotaExceeded(Exception):
    """An error whose constructor does not take its own ``args`` back."""

    def __init__(self, user: str, limit: int) -> None:
        super().__init__(f'{user} is over their quota of {limit}')
        self.user = user
        self.limit = limit
        self.opaque = object()  # not plain data: stays behind


class Outer:
    class NestedError(LookupError):
        """An error class nested in a class (a dotted qualname)."""


def raise_quota(user: str, limit: int) -> None:
    raise QuotaExceeded(user, limit)


def raise_key(key: str) -> None:
    raise KeyError(key)


def raise_nested() -> None:
    error = Outer.NestedError('deep', 7)
    error.add_note('a note that travels')
    raise error


async def relay_quota(user: str, limit: int) -> None:
    """Spawn a child that raises :class:`QuotaExceeded`; its error is
    relayed (as a RemoteActorError) to whoever called this."""
    async with ts.open_nursery() as an:
        portal = await an.start_actor('quota_keeper', enable_modules=['api_targets'])
        await portal.run(raise_quota, user=user, limit=limit)


# -- contexts ------------------------------------------------------------------------

def _record(key: str, value: str) -> None:
    """Record how a context task ended (read with :func:`wait_tracked`)."""
    _tracked.setdefault(key, {})[0] = value
    _notify()


@ts.context
async def echo_server(ctx: ts.Context, first: int) -> str:
    """Started with ``first + 1``; echoes every stream item back."""
    await ctx.started(first + 1)
    count = 0
    async with ctx.open_stream() as stream:
        async for item in stream:
            await stream.send(item)
            count += 1
    return f'echoed {count}'


@ts.context
async def sleeper(ctx: ts.Context, key: str) -> None:
    """Started, then sleeps until cancelled; records ``cancelled`` under
    ``key`` (read with :func:`wait_tracked`)."""
    await ctx.started('sleeping')
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        _record(key, 'cancelled')
        raise


@ts.context
async def raise_after_started(ctx: ts.Context, user: str) -> None:
    await ctx.started('about to fail')
    await trio.lowlevel.checkpoint()
    raise QuotaExceeded(user, 0)


@ts.context
async def raise_before_started(ctx: ts.Context) -> None:
    raise QuotaExceeded('early', 1)


@ts.context
async def never_started(ctx: ts.Context) -> int:
    return 1


@ts.context
async def self_cancelling(ctx: ts.Context) -> None:
    await ctx.started()
    await ctx.cancel()
    await trio.sleep_forever()


@ts.context
async def producer(ctx: ts.Context, n: int) -> int:
    """Sends ``0..n-1`` on the stream, then closes it; returns ``n``."""
    await ctx.started(n)
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
    return n


@ts.context
async def consumer(ctx: ts.Context, key: str) -> list[int]:
    """Reads nothing until :func:`release_tracked` (``key``), then reads the
    stream to its end; returns what it read."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        await _release_event(key).wait()
        return [item async for item in stream]


@ts.context
async def fail_on_item(ctx: ts.Context, bad: int) -> None:
    """Echoes items until it receives ``bad``, then raises."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for item in stream:
            if item == bad:
                raise QuotaExceeded('streamer', item)
            await stream.send(item)


@ts.context
async def nested_context(ctx: ts.Context, n: int) -> int:
    """Opens a context of its own in a child actor (a producer of ``n``) and
    relays the child's stream to its caller; returns the child's result."""
    async with ts.open_nursery() as an:
        portal = await an.start_actor('grandchild', enable_modules=['api_targets'])
        async with portal.open_context(producer, n=n) as (inner, first):
            await ctx.started(first)
            async with inner.open_stream() as inner_stream, ctx.open_stream() as stream:
                async for item in inner_stream:
                    await stream.send(item * 10)
        result = await inner.wait_for_result()
        await portal.cancel_actor()
    return result


@ts.context
async def ticker(ctx: ts.Context, n: int) -> None:
    """Waits for ``'go'`` on the stream, then sends ``0..n-1`` and closes."""
    await ctx.started(n)
    async with ctx.open_stream() as stream:
        assert await stream.receive() == 'go'
        for i in range(n):
            await stream.send(i)


# -- root, discovery, logging ------------------------------------------------------

def actor_facts() -> dict[str, object]:
    """What an actor knows about itself and its logging."""
    from tractor_subint.log import console_level

    return {
        'is_root_process': ts.is_root_process(),
        'is_root': ts.current_actor().is_root,
        'console_level': console_level(),
        'debug_mode': ts.current_actor().debug_mode,
    }


async def call_sibling(name: str, a: int, b: int) -> list[object]:
    """Find the actor ``name`` through the registrar and call it."""
    async with ts.find_actor(name) as portal:
        assert portal is not None, f'{name} not found'
        total = await portal.run(add, a=a, b=b)
        return [total, portal.channel.aid.name, ts.current_actor().name]


async def add(a: int, b: int) -> int:
    await trio.lowlevel.checkpoint()
    return a + b


def own_address() -> list[object]:
    """Where this actor says it listens (``accept_addr``), and its pid."""
    import os

    addr = ts.current_actor().accept_addr
    return [addr.proto_key, addr.sockpath, addr.maybe_pid, os.getpid()]


async def registrar_names() -> dict[str, int]:
    from tractor_subint.runtime import _registry

    async with ts.get_registry() as portal:
        return await portal.run(_registry.names)


# -- debug mode ---------------------------------------------------------------------

async def pause_on_empty_stdin(fifo: str) -> None:
    """Say 'pausing' on ``fifo``, then pause, with stdin at end of file (so the
    REPL, once it has the terminal, quits at once)."""
    import os

    from actor_targets import signal_fifo

    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal_fifo(fifo, 'pausing')
    await ts.pause()
