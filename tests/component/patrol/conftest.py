"""Fixtures of the patrol component tests: gpiozero's mock pin factory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A fresh mock pin factory, reset after the test."""
    f = MockFactory()
    yield f
    f.reset()
