"""Unit tests are fast: none of them may import torch."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_torch(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    assert "torch" not in sys.modules, f"{request.node.nodeid} imported torch"
