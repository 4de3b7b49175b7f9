"""Discovery (issue 18, item 5): the root is the registrar; ``find_actor``,
``wait_for_actor`` and ``get_registry`` reach any actor of the tree by name,
from the root or from another actor."""
from __future__ import annotations

import errno
import socket
import uuid

import api_targets
import pytest
import trio
import trio.testing

import tractor_subint as ts
from tractor_subint.runtime import _registry
from tractor_subint.testing import trio_parent_test

MODULES = ['api_targets']


@trio_parent_test(timeout=30)
async def test_find_actor_from_the_root_and_from_a_sibling(start_method):
    async with ts.open_root_actor() as root:
        async with ts.open_nursery() as an:
            async with ts.find_actor('calc') as nobody:
                assert nobody is None
            calc = await an.start_actor('calc', enable_modules=MODULES)
            client = await an.start_actor('client', enable_modules=MODULES)
            # Found as soon as start_actor() returned.
            async with ts.find_actor('calc') as portal:
                assert portal is not None and portal.uid == calc.uid
                assert await portal.run(api_targets.add, a=2, b=3) == 5
            # From another actor, through the registrar.
            assert await client.run(api_targets.call_sibling, name='calc', a=4, b=5) == [
                9, 'calc', 'client',
            ]
            # The registrar lists everyone, the root included.
            async with ts.get_registry() as registrar:
                assert registrar.uid == root.uid
                assert await registrar.run(_registry.names) == {'root': 1, 'calc': 1, 'client': 1}
            assert await client.run(api_targets.registrar_names) == {'root': 1, 'calc': 1, 'client': 1}
            async with ts.find_actor('calc', only_first=False) as portals:
                assert [p.uid for p in portals] == [calc.uid]
            with pytest.raises(RuntimeError, match='no actor named'):
                async with ts.find_actor('nobody', raise_on_none=True):
                    pass
            await calc.cancel_actor()
            await client.cancel_actor()
        # Reaped actors are gone from the registry.
        async with ts.find_actor('calc') as portal:
            assert portal is None
        async with ts.get_registry() as registrar:
            assert await registrar.run(_registry.names) == {'root': 1}


@trio_parent_test(timeout=30)
async def test_wait_for_actor_waits_until_it_is_spawned(start_method):
    async with ts.open_nursery() as an:
        found = []

        async def waiter() -> None:
            async with ts.wait_for_actor('late') as portal:
                found.append(await portal.run(api_targets.add, a=1, b=1))

        async with trio.open_nursery() as tasks:
            tasks.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert found == []
            portal = await an.start_actor('late', enable_modules=MODULES)
        assert found == [2]
        await portal.cancel_actor()


@trio_parent_test(timeout=30)
async def test_an_actor_cancelled_through_a_found_portal_ends_quietly(start_method):
    async with ts.open_nursery() as an:
        daemon = await an.start_actor('daemon', enable_modules=MODULES)
        async with ts.find_actor('daemon') as portal:
            assert await portal.cancel_actor() is True
        # Its parent learns that the exit was asked for: no failure, and the
        # spawning portal says it was cancelled.
        with pytest.raises(ts.ActorCancelled, match='another actor'):
            with trio.fail_after(5):
                await daemon.run(api_targets.add, a=1, b=1)


@trio_parent_test(timeout=30)
async def test_a_done_run_in_actor_child_answers_peers_until_its_nursery_block_ends(start_method):
    async with ts.open_root_actor():
        async with ts.open_nursery() as an:
            adder = await an.run_in_actor(api_targets.add, name='adder', a=1, b=2)
            assert await adder.wait_for_result() == 3
            # Done, and still there for others (tractor ends it at the block's end).
            async with ts.find_actor('adder') as portal:
                assert portal is not None
                assert await portal.run(api_targets.add, a=5, b=5) == 10
        async with ts.find_actor('adder') as portal:
            assert portal is None


@trio_parent_test(timeout=30)
async def test_the_uds_transport_is_accepted_and_addresses_say_where_actors_listen(start_method):
    async with ts.open_nursery(enable_transports=['uds']) as an:
        portal = await an.start_actor('listener', enable_modules=MODULES)
        proto, sockpath, maybe_pid, pid = await portal.run(api_targets.own_address)
        assert (proto, maybe_pid) == ('uds', pid)
        assert sockpath.startswith('@tractor_subint:')
        # The parent's view of the same actor, through its channel.
        raddr = portal.chan.raddr
        assert (raddr.proto_key, raddr.sockpath, raddr.maybe_pid) == ('uds', sockpath, pid)
        assert ts.current_actor().accept_addr.sockpath != sockpath
        await portal.cancel_actor()


@pytest.mark.parametrize(('transports', 'error', 'match'), [
    (['tcp'], ValueError, "only over Unix sockets.*'uds'"),
    (['uds', 'tcp'], ValueError, 'only over Unix sockets'),
    ('uds', TypeError, 'a list of transport keys'),
])
@trio_parent_test(timeout=30)
async def test_a_transport_actors_here_do_not_speak_is_refused_before_anything_starts(
    transports, error, match,
):
    with pytest.raises(error, match=match):
        async with ts.open_nursery(enable_transports=transports):
            pytest.fail('the nursery opened')
    with pytest.raises(error, match=match):
        async with ts.open_root_actor(enable_transports=transports):
            pytest.fail('the root opened')
    with pytest.raises(RuntimeError, match='no actor runtime'):
        ts.current_actor()


def test_listen_binds_on_the_calling_thread_and_refuses_a_taken_name(monkeypatch):
    """An actor's listener is bound without a worker thread (trio's ``bind``
    would start one for an abstract name, in every freshly forked actor),
    answers a connection, and a name already taken is an error."""
    from tractor_subint.runtime._discovery import address_for, listen

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError('listen() used a worker thread')

    monkeypatch.setattr(trio.to_thread, 'run_sync', no_thread)
    uid = ('listening', uuid.uuid4().hex)

    async def main() -> None:
        with trio.fail_after(10):
            await check()

    async def check() -> None:
        listener = await listen(uid)
        async with listener:
            client = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with client:
                await client.connect(address_for(uid))
                stream = await listener.accept()
                await stream.send_all(b'hi')
                assert await client.recv(2) == b'hi'
                await stream.aclose()
            with pytest.raises(OSError) as taken:
                await listen(uid)
            assert taken.value.errno == errno.EADDRINUSE

    trio.run(main)
