"""The package's errors: one base, public names, and what a traceback shows."""
from __future__ import annotations

import importlib
import pkgutil
import traceback

import pytest

import tractor_subint

PUBLIC_ERRORS = sorted(
    name for name in tractor_subint.__all__
    if isinstance(getattr(tractor_subint, name), type)
    and issubclass(getattr(tractor_subint, name), BaseException)
)

ALWAYS_RUNTIME_ERRORS = [
    'ForkserverError', 'SubintExecError', 'SubinterpretersAliveError', 'UnguardedMainError',
]

NOT_OURS_TO_BASE = {
    # A warning category (register() kept upstream's own backend), not an error.
    'tractor_subint.upstream._patches.UpstreamBackendKept',
}
"""``module.Qualname`` of exception classes defined in the package that are
deliberately not a :class:`TractorSubintError`: control flow that must not be
caught as an error, say, or a warning category. Add one here with the reason."""


def test_the_public_errors_are_the_ones_the_issue_named():
    assert {
        'TractorSubintError', 'ActorFailure', 'RemoteActorError', 'StreamOverrun', 'ValueDecodeError',
        'ProtocolError', *ALWAYS_RUNTIME_ERRORS,
    } <= set(PUBLIC_ERRORS)


@pytest.mark.parametrize('name', PUBLIC_ERRORS)
def test_a_public_error_derives_from_the_base_and_prints_its_public_name(name):
    cls = getattr(tractor_subint, name)
    assert issubclass(cls, tractor_subint.TractorSubintError)
    assert issubclass(cls, Exception)
    assert (cls.__module__, cls.__qualname__) == ('tractor_subint', name)
    # What a traceback's last line says, and the name resolves to the class.
    shown = traceback.format_exception_only(cls.__new__(cls))[0]
    assert shown.startswith(f'tractor_subint.{name}'), shown
    assert getattr(importlib.import_module(cls.__module__), name) is cls


@pytest.mark.parametrize('name', ALWAYS_RUNTIME_ERRORS)
def test_errors_that_were_runtime_errors_still_are(name):
    assert issubclass(getattr(tractor_subint, name), RuntimeError)


def test_an_actor_failure_prints_as_tractor_subint_actor_failure():
    error = tractor_subint.ActorFailure('svc', 'failed to boot', None)
    assert traceback.format_exception_only(error) == [
        "tractor_subint.ActorFailure: actor 'svc' failed to boot: exit status unknown\n",
    ]


def test_protocol_error_is_one_class_for_both_wire_formats():
    from tractor_subint.runtime import _channel
    from tractor_subint.spawn import _wire

    assert _channel.ProtocolError is _wire.ProtocolError is tractor_subint.ProtocolError


def _package_modules() -> list[str]:
    names = ['tractor_subint']
    for info in pkgutil.walk_packages(tractor_subint.__path__, 'tractor_subint.'):
        if '.testing.' in info.name or info.name.endswith('__main__'):
            continue
        names.append(info.name)
    return names


def test_every_error_the_package_defines_derives_from_the_base():
    strays = []
    for module_name in _package_modules():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name and exc.name.split('.')[0] in {'tractor', 'tricycle'}:
                continue  # the upstream adapter's child side, without upstream installed
            raise
        for value in vars(module).values():
            if not (isinstance(value, type) and issubclass(value, BaseException)):
                continue
            if value.__module__ != module_name and value.__module__ != 'tractor_subint':
                continue  # imported, not defined here
            where = f'{module_name}.{value.__qualname__}'
            if not issubclass(value, tractor_subint.TractorSubintError) and where not in NOT_OURS_TO_BASE:
                strays.append(where)
    assert not strays, f'not a TractorSubintError: {strays}'


def test_remote_actor_error_is_still_caught_as_an_exception():
    from tractor_subint.runtime._errors import box_error

    try:
        raise ValueError('boom')
    except ValueError as exc:
        info = box_error(exc, ('a', 'f' * 32))
    with pytest.raises(Exception) as caught:
        raise tractor_subint.RemoteActorError(info)
    assert isinstance(caught.value, tractor_subint.TractorSubintError)
    assert caught.value.type_name == 'ValueError'
