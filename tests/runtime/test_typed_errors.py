"""Remote errors caught by type (issue 18, item 3): ``boxed_type``, qualified
type names, the error's data kept, and ``raise_boxed()`` / ``unwrap()``."""
from __future__ import annotations

import api_targets
import pytest
from api_targets import QuotaExceeded

import tractor_subint as ts
from tractor_subint.runtime._errors import qualified_type_name, resolve_type_name
from tractor_subint.runtime._msgs import ErrorInfo
from tractor_subint.testing import trio_parent_test

MODULES = ['api_targets']


@trio_parent_test(timeout=20)
async def test_a_remote_error_is_caught_by_its_own_type_through_raise_boxed(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('quota', enable_modules=MODULES)
        with pytest.raises(QuotaExceeded) as info:
            try:
                await portal.run(api_targets.raise_quota, user='alice', limit=3)
            except ts.RemoteActorError as boxed:
                assert boxed.type_name == 'api_targets.QuotaExceeded'
                assert boxed.boxed_type is QuotaExceeded
                assert boxed.remote_args == ('alice is over their quota of 3',)
                assert boxed.remote_attrs == {'user': 'alice', 'limit': 3}  # not 'opaque'
                boxed.raise_boxed()
        error = info.value
        assert type(error) is QuotaExceeded
        assert (error.user, error.limit) == ('alice', 3)
        assert str(error) == 'alice is over their quota of 3'
        assert not hasattr(error, 'opaque')
        # The remote traceback is the cause, as concurrent.futures does it.
        cause = error.__cause__
        assert isinstance(cause, ts.RemoteActorError)
        assert 'raise QuotaExceeded(user, limit)' in cause.remote_traceback
        assert tuple(cause.actor_uid) == portal.uid
        await portal.cancel_actor()


@trio_parent_test(timeout=20)
async def test_builtin_and_nested_error_types(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('types', enable_modules=MODULES)
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(api_targets.raise_key, key='missing')
        assert info.value.type_name == 'KeyError'
        assert info.value.boxed_type is KeyError
        rebuilt = info.value.unwrap()
        assert type(rebuilt) is KeyError and rebuilt.args == ('missing',)

        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(api_targets.raise_nested)
        assert info.value.type_name == 'api_targets.Outer.NestedError'
        assert info.value.boxed_type is api_targets.Outer.NestedError
        with pytest.raises(LookupError) as caught:
            info.value.raise_boxed()
        assert caught.value.args == ('deep', 7)
        assert caught.value.__notes__ == ['a note that travels']
        await portal.cancel_actor()


@trio_parent_test(timeout=30)
async def test_a_relayed_error_unwraps_to_the_original(start_method):
    async with ts.open_nursery() as an:
        portal = await an.start_actor('relay', enable_modules=MODULES)
        with pytest.raises(ts.RemoteActorError) as info:
            await portal.run(api_targets.relay_quota, user='bob', limit=1)
        relayed = info.value
        assert relayed.boxed_type is ts.RemoteActorError
        assert relayed.src_type is QuotaExceeded
        assert relayed.src_type_name == 'api_targets.QuotaExceeded'
        assert relayed.src_uid[0] == 'quota_keeper'
        with pytest.raises(QuotaExceeded) as caught:
            relayed.raise_boxed()
        assert (caught.value.user, caught.value.limit) == ('bob', 1)
        await portal.cancel_actor()


def _info(type_name: str, **fields: object) -> ErrorInfo:
    return ErrorInfo(type_name, 'msg', 'Traceback ...', ('a', '1'), type_name, ('a', '1'), **fields)


def test_an_error_type_unknown_here_stays_boxed():
    error = ts.RemoteActorError(_info('no_such_module_here.Gone', args=('msg',)))
    assert error.boxed_type is None
    assert error.unwrap() is error
    with pytest.raises(ts.RemoteActorError) as info:
        error.raise_boxed()
    assert info.value is error


def test_a_type_that_cannot_be_rebuilt_stays_boxed():
    # A name that resolves to something that is not an exception class.
    error = ts.RemoteActorError(_info('api_targets.raise_key'))
    assert error.boxed_type is None
    assert error.unwrap() is error


def test_type_names_are_qualified_as_tracebacks_print_them():
    assert qualified_type_name(KeyError) == 'KeyError'
    assert qualified_type_name(QuotaExceeded) == 'api_targets.QuotaExceeded'
    assert qualified_type_name(api_targets.Outer.NestedError) == 'api_targets.Outer.NestedError'
    assert resolve_type_name('api_targets.Outer.NestedError') is api_targets.Outer.NestedError
    assert resolve_type_name('KeyError') is KeyError
    assert resolve_type_name('tractor_subint.RemoteActorError') is ts.RemoteActorError
    assert resolve_type_name('len') is None
    assert resolve_type_name('') is None
