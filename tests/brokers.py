"""Brokers for tests: Mosquitto as it ships, Mosquitto set up strictly, and amqtt (MQTT 3.1.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.localbroker import Broker, mosquitto_path


def run_mosquitto(workdir: Path, extra_conf: str = "") -> Iterator[Broker]:
    """A fresh Mosquitto on a free loopback port with `extra_conf` lines, stopped afterwards."""
    if mosquitto_path() is None:
        pytest.fail(
            "mosquitto is not installed: scripts/test installs it (apt-get install mosquitto)"
        )
    b = Broker(workdir, extra_conf=extra_conf)
    b.start()
    try:
        yield b
    finally:
        b.stop()
