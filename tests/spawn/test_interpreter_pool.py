"""The in-process interpreter pool never loses sight of an interpreter it made.

``pooled_interpreters()`` is what "an actor left nothing behind" checks allow
beside the main interpreter; an interpreter the pool's keeper holds but lists
nowhere reads as an actor's leak. These tests stop the keeper at the moment it
destroys an interpreter (its ``teardown_subint``) and look then.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tractor_subint.spawn import live_subinterpreters, pooled_interpreters
from tractor_subint.spawn.pool import _interpreters
from tractor_subint.spawn.pool._sizing import IDLE_ENV_VAR

ENTRY = 'json:dumps'  # a light module: a pool of its own, not the runtime's
WAIT = 30.0


class Gate:
    """Holds the keeper in one call until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()
        self.arg: int | None = None

    def hold(self, interp_id: int) -> None:
        self.arg = interp_id
        self.entered.set()
        assert self.go.wait(WAIT), 'the test never let the keeper go'


@pytest.fixture
def gated_teardown(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    real = _interpreters.teardown_subint

    def teardown(interp_id: int, *args: object) -> None:
        gate.hold(interp_id)
        real(interp_id, *args)

    monkeypatch.setattr(_interpreters, 'teardown_subint', teardown)
    yield gate
    gate.go.set()


def test_an_interpreter_warmed_for_a_closing_pool_is_listed_until_destroyed(
    monkeypatch: pytest.MonkeyPatch, gated_teardown: Gate,
) -> None:
    warming = Gate()
    real_warm = _interpreters.warm_subint

    def warm(interp_id: int, *args: object, **kwargs: object) -> None:
        warming.hold(interp_id)
        real_warm(interp_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_interpreters, 'warm_subint', warm)
    pool = _interpreters.interpreter_pool('isolated', ENTRY, 1)
    assert pool is not None
    closer = threading.Thread(target=pool.close)
    try:
        assert warming.entered.wait(WAIT)
        closer.start()  # closes while the keeper warms: the keeper must drop it
        warming.go.set()
        assert gated_teardown.entered.wait(WAIT)
        assert gated_teardown.arg == warming.arg
        assert warming.arg in live_subinterpreters()
        assert warming.arg in pooled_interpreters()
    finally:
        warming.go.set()
        gated_teardown.go.set()
        if closer.ident is not None:
            closer.join(WAIT)
        pool.close()
    assert warming.arg not in live_subinterpreters()


def test_a_pool_closed_by_its_idle_timeout_lists_what_it_destroys(
    monkeypatch: pytest.MonkeyPatch, gated_teardown: Gate,
) -> None:
    monkeypatch.setenv(IDLE_ENV_VAR, '0.5')
    pool = _interpreters.interpreter_pool('isolated', ENTRY, 1)
    assert pool is not None
    try:
        assert pool.wait_ready(1, timeout=WAIT)
        (held,) = pool.idle()
        assert gated_teardown.entered.wait(WAIT)  # the idle timeout passed
        assert gated_teardown.arg == held
        assert pool.closed
        assert held in live_subinterpreters()
        assert held in pooled_interpreters()
    finally:
        gated_teardown.go.set()
        pool.close()
    assert held not in live_subinterpreters()
    assert held not in pooled_interpreters()
