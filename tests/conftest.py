"""The session's guarantees (every orphan comes back to us, nothing is left
behind) and ``--spawn-backend`` come from the ``tractor_subint`` pytest
plugin (``tractor_subint.testing.pytest_plugin``), enabled in this project's
``addopts``.

``--run-soak`` also runs the tests marked ``soak`` (long, resource-trend
checks; CI runs them once per backend on 3.13)."""
from __future__ import annotations

import pytest

pytest_plugins = ['pytester']


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption('--run-soak', action='store_true', help='also run the tests marked soak')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'soak: a long resource-trend test, run with --run-soak')


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption('--run-soak'):
        return
    skip = pytest.mark.skip(reason='a soak test: run with --run-soak')
    for item in items:
        if 'soak' in item.keywords:
            item.add_marker(skip)
