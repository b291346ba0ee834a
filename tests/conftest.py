"""Shared fixtures (a Mosquitto per test, the shared data folder) and the markers every test
gets from what it uses (broker, browser) and where it lives (slow)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from agent.demo.broker import Broker
from tests.kits.brokers import KINDS, run_mosquitto
from tests.kits.mqtt import Watcher
from tests.kits.paths import SHARED_DATA

BROKER_FIXTURES = {"broker", "own_broker", "any_broker", "ops"}

# Hypothesis's per-example deadline is a timing assert: on a loaded CI machine one slow example
# fails a correct test. Properties are judged on what they compute, never on how fast. The
# "thorough" profile (`scripts/test --hypothesis-profile=thorough`) runs 20x the examples of
# each property that does not set its own count, to look for what a normal run may miss.
settings.register_profile("grid", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=2000)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--watcher-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="deliver every message to the tests' MQTT watcher S seconds late (fault injection: "
        "finds tests that read what the broker acknowledged before the watcher has it)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis profile: the one named on the command line, else "grid"; the watcher's
    delivery delay (`--watcher-delay`)."""
    settings.load_profile(config.getoption("hypothesis_profile", None) or "grid")
    Watcher.delivery_delay_s = config.getoption("watcher_delay")


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


# Each test that talks to a broker gets a Mosquitto of its own (about 0.1 s to start and
# stop). One Mosquitto per session with a mounted listener per test was tried: Debian's
# Mosquitto 2.0.11 sends retained messages to a mounted listener with the prefix left on, so a
# test's retained documents reached its agent on a foreign topic. Sessions and retained
# messages are what the agent's tests are about, so isolation wins over the saved second.
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A fresh Mosquitto on a free loopback port, stopped after the test."""
    yield from run_mosquitto(tmp_path / "broker")


@pytest.fixture
def own_broker(broker: Broker) -> Broker:
    """The same: said by tests that stop, freeze or restart their broker."""
    return broker


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
async def ops(broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """`edge-agent ops` against `broker`, with a fresh signing key the agents trust."""
    from tests.kits.ops import Ops

    o = Ops(broker, tmp_path, capsys)
    await o.keygen()
    return o
