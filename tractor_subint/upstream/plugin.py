"""``pytest -p tractor_subint.upstream.plugin``: our backends in a run of
upstream tractor's test suite.

Loaded after upstream's plugin (``-p tractor._testing.pytest``, which its
``addopts`` adds), it only registers our keys: ``--spawn-backend``, the
fixtures and the markers stay upstream's. Nothing here turns itself on: a
project asks for it with ``-p``.
"""
from __future__ import annotations

import sys

import pytest

from . import OUR_KEYS, patch_pytest_plugin, register

register()


def pytest_configure(config: pytest.Config) -> None:
    plugin = sys.modules.get('tractor._testing.pytest')
    if plugin is not None:  # loaded after us after all: patch it now
        patch_pytest_plugin(plugin)


def pytest_report_header(config: pytest.Config) -> str:
    return f'tractor_subint: spawn backends {", ".join(OUR_KEYS)} registered into tractor'
