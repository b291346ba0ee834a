"""Shared fixtures: a real Mosquitto broker, the shared real-world data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.localbroker import Broker, mosquitto_path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto on a free loopback port, stopped after the test."""
    if mosquitto_path() is None:
        pytest.fail(
            "mosquitto is not installed: scripts/test installs it (apt-get install mosquitto)"
        )
    b = Broker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout, or a skip saying why."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real-world captures not found at {SHARED_DATA} (CI has them; a clone does not)"
        )
    return SHARED_DATA


@pytest.fixture
async def ops(broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """`edge-agent ops` against `broker`, with a fresh signing key the agents trust."""
    from tests.test_ops_e2e import Ops

    o = Ops(broker, tmp_path, capsys)
    await o.keygen()
    return o
