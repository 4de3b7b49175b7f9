"""plain_interrupt(): which groups are "just a Ctrl-C" (no actors spawned)."""
from __future__ import annotations

import pytest

from tractor_subint.runtime._errors import ActorFailure
from tractor_subint.runtime._interrupts import interrupts_unwrapped, plain_interrupt
from tractor_subint.spawn import ChildExitStatus


def _failure(returncode: int, *, stop_requested: bool = False) -> ActorFailure:
    return ActorFailure('a', 'went away', ChildExitStatus(1, returncode), stop_requested=stop_requested)


@pytest.mark.parametrize('siblings', [
    [],
    [_failure(130)],
    [_failure(-2)],
    [_failure(-9, stop_requested=True)],
    [BaseExceptionGroup('inner', [_failure(130), KeyboardInterrupt()])],
])
def test_a_group_of_an_interrupt_and_what_it_brought_is_the_interrupt(siblings):
    interrupt = KeyboardInterrupt()
    group = BaseExceptionGroup('outer', [interrupt, *siblings])
    assert plain_interrupt(group) is interrupt
    assert interrupt.__suppress_context__


@pytest.mark.parametrize('siblings', [
    [ValueError('a real error')],
    [_failure(1)],
    [_failure(-9)],  # killed, but not by us: news
])
def test_a_group_with_anything_else_stays_a_group(siblings):
    group = BaseExceptionGroup('outer', [KeyboardInterrupt(), *siblings])
    assert plain_interrupt(group) is group


def test_no_interrupt_no_change():
    group = BaseExceptionGroup('outer', [_failure(130)])
    assert plain_interrupt(group) is group
    error = ValueError('x')
    assert plain_interrupt(error) is error


def test_interrupts_unwrapped_re_raises_the_plain_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with interrupts_unwrapped():
            raise BaseExceptionGroup('g', [KeyboardInterrupt()])
    with pytest.raises(BaseExceptionGroup):
        with interrupts_unwrapped():
            raise BaseExceptionGroup('g', [KeyboardInterrupt(), ValueError()])
