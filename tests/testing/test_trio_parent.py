"""``trio_parent_test``: an async test run inside ``trio.run()``, bounded."""
from __future__ import annotations

import pytest
import trio

from tractor_subint.testing import trio_parent_test
from tractor_subint.testing._trio_parent import DEFAULT_TIMEOUT


@trio_parent_test
async def test_bare_use_runs_under_the_default_bound(tmp_path):
    # Fixtures arrive as arguments; the body runs inside trio.run().
    assert tmp_path.is_dir()
    assert trio.current_effective_deadline() == pytest.approx(trio.current_time() + DEFAULT_TIMEOUT, abs=5)


@trio_parent_test(7)
async def test_a_given_timeout_is_the_bound():
    assert trio.current_effective_deadline() == pytest.approx(trio.current_time() + 7, abs=1)


def test_a_hang_fails_the_test_with_too_slow_error():
    @trio_parent_test(0.05)
    async def hangs() -> None:
        await trio.sleep_forever()

    with pytest.raises(trio.TooSlowError):
        hangs()


def test_a_sync_function_is_refused():
    with pytest.raises(TypeError, match='must be an async function'):
        trio_parent_test(lambda: None)  # type: ignore[arg-type]
