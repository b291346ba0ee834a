"""Shared fixtures: a real Mosquitto broker, the shared real-world data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.demo.broker import Broker
from tests.kits.brokers import KINDS, run_mosquitto

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto on a free loopback port, stopped after the test."""
    yield from run_mosquitto(tmp_path / "broker")


@pytest.fixture(params=sorted(KINDS))
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """Each broker kind in turn (Mosquitto, strict Mosquitto, amqtt): for the sync tests."""
    yield from KINDS[request.param](tmp_path / request.param)


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
