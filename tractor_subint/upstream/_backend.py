"""The parent side: our backends as upstream tractor spawn methods.

Upstream's ``new_proc`` awaits ``_methods[key](name, actor_nursery,
subactor, errors, bind_addrs, parent_addr, _runtime_vars, *,
infect_asyncio, task_status, proc_kwargs)``; :func:`make_spawn_method`
builds one such coroutine per key of ours. It speaks upstream's protocol,
in the spawn contract the installed tractor has (``_shape``):

1. start the child with our backend (fork here, through the spawn tree's
   forkserver, or from the warm pool), with a socketpair as its lifeline;
   per-child reap with ``_register_child`` (#481): register it at once;
2. wait for the child to dial back (upstream's ``wait_for_peer`` event,
   registered before the child exists: a fork child can be back first),
   raced against its death: a child that dies first is an ``ActorFailure``
   naming its exit status, never a hang;
3. register the child in the nursery (per-child reap: its reap request),
   send it upstream's ``SpawnSpec``, hand the portal back
   (``task_status.started``);
4. wait for the nursery's join (per-child reap: the child's reap request),
   then upstream's soft kill (and ``cancel_on_completion`` for
   ``run_in_actor`` children, where that exists), and, whatever happens,
   upstream's hard kill for a child still alive, then release the lifeline.
   Per-child reap: ``new_proc`` marks the child reaped when we return.

Upstream's helpers are called (looked up at call time, as upstream does),
not copied; the handle is our
:class:`~tractor_subint.spawn.ProcessHandle`, which has everything they use
(``pid``, ``poll``, ``returncode``, ``wait``, ``kill``, ``terminate``, no
std pipes).
"""
from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from tractor import _exceptions
from tractor.devx import debug
from tractor.msg import types as msgtypes
from tractor.runtime import _state
from tractor.runtime._portal import Portal
from tractor.runtime._runtime import Actor
from tractor.spawn import _spawn as upstream_spawn

from ..runtime import _testhooks
from ..spawn import (
    ProcessHandle,
    SpawnRequest,
    can_fork_here,
    close_local_pools,
    current_tree,
    get_backend,
    open_tree,
)
from ._child import encode_spawn
from ._patches import spawn_contract
from ._shape import SpawnContract

CHILD_ENTRY = 'tractor_subint.upstream._child:upstream_child_main'

UpstreamSpawnFn = Callable[..., Awaitable[None]]


def _ensure_spawn_tree() -> None:
    """A root of an upstream tree has no spawn tree of ours yet: open one,
    closed with the root actor (upstream closes the class-level
    ``Actor.lifetime_stack`` at the end of the actor's runtime), after the
    warm pools our spawns start in this process."""
    if current_tree() is None and can_fork_here():
        Actor.lifetime_stack.callback(open_tree().close)
        Actor.lifetime_stack.callback(close_local_pools)  # the stack unwinds last first


def _expect_connection(server: Any, uid: tuple[str, str]) -> trio.Event:
    """Register the wait for ``uid``'s connection before the child exists.

    Upstream's connection handler wakes (and forgets) a waiter only if one
    is registered when the child's handshake completes; ``wait_for_peer``
    registers one only when called. A forked child dials back within
    milliseconds, often before the spawning task gets to ``wait_for_peer``,
    and the spawn would wait forever (an exec'd child is never that fast).
    So the event is registered first, and waited on directly.
    """
    event: trio.Event = server._peer_connected.setdefault(uid, trio.Event())
    return event


async def _until_registered(server: Any, uid: tuple[str, str]) -> None:
    # Test hook only: wait for the handler to have registered the child, so
    # that waiting starts after the connection (the interleaving above).
    while uid not in server._peers:
        await trio.sleep(0.005)


async def _connected_or_dead(
    server: Any, uid: tuple[str, str], connected: trio.Event, proc: ProcessHandle,
) -> Any:
    """The child's channel once it dialled back; ``ActorFailure`` if it died first."""
    async with trio.open_nursery() as race:
        async def wait_connected() -> None:
            if _testhooks.enabled('upstream_parent_after_connect'):
                await _until_registered(server, uid)
            await connected.wait()
            race.cancel_scope.cancel()

        async def died() -> None:
            await proc.wait()
            race.cancel_scope.cancel()

        race.start_soon(wait_connected)
        race.start_soon(died)
    if not connected.is_set():
        status = proc.exit_status
        raise _exceptions.ActorFailure(
            f'actor {uid[0]!r} died before it connected back: '
            f'{status.describe() if status else "exit status unknown"}'
        )
    return server._peers[uid][-1]


def _register_with_process(actor_nursery: Any, subactor: Actor, proc: ProcessHandle) -> trio.Event:
    """Per-child reap, #481's way: the child is the nursery's as soon as its
    process exists; refused (the process killed) if the nursery is already
    cancelling."""
    reap_request, _, nursery_cancelling = actor_nursery._register_child(subactor, proc, None)
    if nursery_cancelling:
        proc.kill()
        raise RuntimeError(
            f'actor {subactor.aid.uid[0]!r} was spawned after its nursery began cancelling'
        )
    event: trio.Event = reap_request
    return event


async def _soft_kill(
    contract: SpawnContract, actor_nursery: Any, proc: ProcessHandle, portal: Portal,
    subactor: Actor, errors: dict[tuple[str, str], Exception],
) -> None:
    """Upstream's soft kill; meanwhile, where ``run_in_actor`` exists, its
    result collector for such a child."""
    async with trio.open_nursery() as reaper:
        if contract.run_in_actor and portal in actor_nursery._cancel_after_result_on_exit:
            reaper.start_soon(upstream_spawn.cancel_on_completion, portal, subactor, errors)
        await upstream_spawn.soft_kill(proc, type(proc).wait, portal)
        reaper.cancel_scope.cancel()


def make_spawn_method(key: str) -> UpstreamSpawnFn:
    """Upstream's spawn-method coroutine for our backend ``key``."""
    backend = get_backend(key)

    async def spawn_method(
        name: str,
        actor_nursery: Any,
        subactor: Actor,
        errors: dict[tuple[str, str], Exception],
        bind_addrs: list[Any],
        parent_addr: Any,
        _runtime_vars: dict[str, Any],
        *,
        infect_asyncio: bool = False,
        task_status: trio.TaskStatus[Portal] = trio.TASK_STATUS_IGNORED,
        proc_kwargs: dict[str, Any] | None = None,
    ) -> None:
        contract = spawn_contract()
        _ensure_spawn_tree()
        uid: tuple[str, str] = subactor.aid.uid
        server = actor_nursery._actor.ipc_server
        connected = _expect_connection(server, uid)
        lifeline, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc: ProcessHandle | None = None
        reap_request: trio.Event | None = None
        cancelled_during_spawn = False
        try:
            try:
                proc = await backend.spawn(SpawnRequest(
                    name=name,
                    entry=CHILD_ENTRY,
                    boot_payload=encode_spawn(
                        uid, subactor.loglevel, parent_addr, infect_asyncio, key,
                    ),
                    ipc_fd=theirs.fileno(),
                ))
                theirs.close()
                if contract.registers_with_process:
                    reap_request = _register_with_process(actor_nursery, subactor, proc)
                chan = await _connected_or_dead(server, uid, connected, proc)
            except trio.Cancelled:
                cancelled_during_spawn = True
                raise
            finally:
                theirs.close()
                if server._peer_connected.get(uid) is connected:
                    del server._peer_connected[uid]  # never connected

            portal = Portal(chan)
            if contract.per_child_reap and reap_request is None:
                reap_request, _ = actor_nursery._register_child_reap(uid)
            actor_nursery._children[uid] = (subactor, proc, portal)
            await chan.send(msgtypes.SpawnSpec(
                _parent_main_data=subactor._parent_main_data,
                enable_modules=subactor.enable_modules,
                reg_addrs=subactor.reg_addrs,
                bind_addrs=bind_addrs,
                _runtime_vars=_runtime_vars,
            ))
            _state.current_actor()._actoruid2nursery[uid] = actor_nursery
            task_status.started(portal)

            if reap_request is None:
                reap_request = actor_nursery._join_procs  # backends reap: all at once
            with trio.CancelScope(shield=True):
                await reap_request.wait()
            await _soft_kill(contract, actor_nursery, proc, portal, subactor, errors)
        finally:
            if proc is not None:
                with trio.CancelScope(shield=True):
                    await debug.maybe_wait_for_debugger(
                        child_in_debug=_runtime_vars.get('_debug_mode', False),
                    )
                    if proc.poll() is None:
                        await upstream_spawn.hard_kill(proc, bind_addrs=bind_addrs, subactor=subactor)
                    await proc.wait()
            lifeline.close()  # after the reap: the child's lifeline held while it lived
            if not cancelled_during_spawn:
                actor_nursery._children.pop(uid, None)

    spawn_method.__name__ = spawn_method.__qualname__ = f'{key}_proc'
    spawn_method.__doc__ = f'Spawn an upstream tractor actor with our {key!r} backend.'
    return spawn_method
