"""Typed payloads (issue 18, item 4): records named in annotations (or
registered) arrive as their types; a set stays a set; on the marshal path
(``subint``) what cannot cross is named."""
from __future__ import annotations

from dataclasses import asdict

import msgspec
import payload_targets as pt
import pytest
from _rt_helpers import runs_in_this_process

import tractor_subint as ts
from tractor_subint.runtime._payloads import carry, ext_hook
from tractor_subint.testing import trio_parent_test

MODULES = ['payload_targets']


def _marshal_path(start_method: str) -> bool:
    return runs_in_this_process(start_method)  # the subint backend's channels speak marshal


async def _spawn(an: ts.ActorNursery, start_method: str) -> ts.Portal:
    # Under subint, a legacy subinterpreter: the targets import msgspec.
    extra = {'interpreter': 'legacy'} if _marshal_path(start_method) else {}
    return await an.start_actor('typed', enable_modules=MODULES, **extra)


@trio_parent_test(timeout=20)
async def test_sets_stay_sets_both_ways(start_method):
    async with ts.open_nursery() as an:
        portal = await _spawn(an, start_method)
        value = {'s': {1, 2}, 'f': frozenset({'a'}), 'nested': [[{3}], [frozenset()]]}
        assert await portal.run(pt.echo, value=value) == value
        assert await portal.run(pt.type_names, value=[{1}, frozenset({2}), (3,)]) == [
            'list', ['set', 'frozenset', ['list' if not _marshal_path(start_method) else 'tuple', ['int']]],
        ]
        got = await portal.run(pt.echo, value={'s': {1, 2}})
        assert type(got['s']) is set
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_annotated_records_arrive_as_their_types(start_method):
    async with ts.open_nursery() as an:
        portal = await _spawn(an, start_method)
        if _marshal_path(start_method):
            # marshal carries no records: the error names the type and the way out.
            cannot_cross = r'payload_targets\.Order cannot cross the marshal codec'
            with pytest.raises(TypeError, match=cannot_cross) as info:
                await portal.run(pt.order_qty, order=pt.Order('x', 1, {'a'}))
            assert 'dataclasses.asdict' in str(info.value)
            # The way out it names works (not interpreter='legacy': marshal too).
            assert "'subint_forkserver'" in str(info.value)
            assert "interpreter='legacy'" not in str(info.value)
            # Its fields cross, and the annotation rebuilds it where msgspec loads.
            fields = asdict(pt.Order('x', 2, {'a'}))
            assert await portal.run(pt.order_qty, order=fields) == [2, 'Order', 'NoneType']
            await portal.cancel_actor()
            return
        order = await portal.run(pt.make_order, item='tea', qty=3)
        assert order == pt.Order('tea', 3, {'fast', 'fragile'}) and type(order) is pt.Order
        assert await portal.run(pt.order_qty, order=order, where=pt.Point(1, 2)) == [3, 'Order', 'Point']
        async with portal.open_stream_from(pt.points, n=3) as stream:
            assert [p async for p in stream] == [pt.Point(0, 0), pt.Point(1, -1), pt.Point(2, -2)]
        # A result that is not its declared type is refused where it arrives.
        with pytest.raises(ts.MsgTypeError, match='wrong_result'):
            await portal.run(pt.wrong_result)
        # Not annotated, not registered: a record arrives as its fields (as before).
        assert await portal.run(pt.echo, value=pt.Point(5, 6)) == {'x': 5, 'y': 6}
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_registered_types_arrive_as_themselves_unannotated(start_method):
    if _marshal_path(start_method):
        pytest.skip('marshal carries no records (see the annotated test)')
    async with ts.open_nursery() as an:
        portal = await _spawn(an, start_method)
        tagged = pt.Tagged('box', frozenset({1, 2}))
        echoed = await portal.run(pt.echo, value=[tagged, {'t': tagged}])
        assert echoed == [tagged, {'t': tagged}]
        assert type(echoed[0]) is pt.Tagged and type(echoed[0].parts) is frozenset
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_a_context_s_pld_spec_is_checked_and_decoded(start_method):
    if _marshal_path(start_method):
        pytest.skip('marshal carries no records')
    async with ts.open_nursery() as an:
        portal = await _spawn(an, start_method)
        async with (
            portal.open_context(pt.point_doubler) as (ctx, first),
            ctx.open_stream() as stream,
        ):
            assert first == pt.Point(0, 0) and type(first) is pt.Point
            for i in range(3):
                await stream.send(pt.Point(i, i))
                doubled = await stream.receive()
                assert type(doubled) is pt.Point and doubled == pt.Point(2 * i, 2 * i)
            with pytest.raises(ts.MsgTypeError, match='stream item'):
                await stream.send('not a point')
        refused = await ctx.wait_for_result()
        assert 'started() value' in refused and 'Point' in refused
        await portal.cancel_actor()


def test_carry_copies_nothing_without_sets_and_round_trips_them():
    plain = {'a': [1, 2, 'x'], 'b': (None, 2.5)}
    assert carry(plain) is plain
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(ext_hook=ext_hook)
    value = [{1, 2}, {'k': frozenset({'z'})}, [[{3}]]]
    assert dec.decode(enc.encode(carry(value))) == value
    with pytest.raises(TypeError, match='neither a dataclass nor a msgspec.Struct'):
        ts.register_payload_type(int)


def test_a_registered_type_unknown_where_it_arrives_fails_saying_so():
    from tractor_subint.runtime._payloads import TYPED_EXT

    data = msgspec.msgpack.encode(['elsewhere.Only', {'a': 1}])
    with pytest.raises(TypeError, match=r'elsewhere\.Only arrived.*register it'):
        ext_hook(TYPED_EXT, memoryview(data))


@pytest.mark.parametrize(('value', 'special'), [
    (1, False), ([1, 'a', None], False), ({'k': {'j': [1, 2.5]}}, False), ([1, {2}], True),
    ({'k': [(1, frozenset())]}, True), ([[[[{1}]]]], True), ([pt.Order('x', 1, {'a'})], False),
    ({'a': pt.Point(1, 2), 'b': [set()]}, True), ([pt.Tagged('t', frozenset())], True),
])
def test_the_scan_finds_sets_and_registered_records_and_looks_into_nothing_else(value, special):
    from tractor_subint.runtime._payloads import _holds_special

    assert _holds_special(value) is special
    assert (carry(value) is value) is not special
