"""Fixtures for the runtime behaviour suite.

The spawn backend comes from the ``tractor_subint`` pytest plugin
(``--spawn-backend``, the ``start_method`` fixture); tests never name one.
"""
from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from _rt_helpers import Fifo, Gate


@pytest.fixture
def fifo(tmp_path: pathlib.Path) -> Iterator[Fifo]:
    f = Fifo(tmp_path / 'report.fifo')
    yield f
    f.close()


@pytest.fixture
def gate(tmp_path: pathlib.Path) -> Iterator[Gate]:
    g = Gate(tmp_path / 'gate.fifo')
    yield g
    g.release()
