"""Shared fixtures (the session's Mosquitto, a broker of a test's own, the shared data folder) and
the markers every test gets from what it uses (broker, browser) and where it lives (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kits.brokers import KINDS, run_mosquitto
from tests.kits.paths import SHARED_DATA
from tests.kits.shared_broker import Lease, SharedMosquitto

BROKER_FIXTURES = {"broker", "own_broker", "any_broker", "ops"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """broker: uses a real broker; browser: drives Chromium; slow: a whole system test."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & BROKER_FIXTURES:
            item.add_marker(pytest.mark.broker)
        if "browser" in item.nodeid:
            item.add_marker(pytest.mark.browser)
        if "/system/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def session_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedMosquitto]:
    """The one Mosquitto process (or a few) of the session; see tests/kits/shared_broker.py."""
    shared = SharedMosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def broker(session_mosquitto: SharedMosquitto) -> Lease:
    """The session's Mosquitto through a listener of this test's own (its own topic prefix)."""
    return session_mosquitto.lease()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Any]:
    """A Mosquitto process of this test's own, for tests that stop, freeze or restart it."""
    yield from run_mosquitto(tmp_path / "broker")


@pytest.fixture(params=sorted(KINDS))
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
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
async def ops(broker: Lease, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """`edge-agent ops` against `broker`, with a fresh signing key the agents trust."""
    from tests.system.ops.test_ops_e2e import Ops

    o = Ops(broker, tmp_path, capsys)
    await o.keygen()
    return o
