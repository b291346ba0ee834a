"""`reported.problems` (contract §6, 2026-12-07b): kept current and retained, in words for people.

The reported failures: an unplugged GPS port, a dead NFC reader, a failed SOS button and a
rolled-back config never reached central. Each is now in the retained `reported`, and leaves it
again when the part is back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.demo.broker import Broker
from agent.documents.remote_config import ConfigStore
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ota import (
    CONFIG_TOPIC,
    acks,
    body_of,
    local_config,
    start_run,
    stop_run,
)

REPORTED = f"grid/v1/{DEV}/reported"


def last_reported(w: Watcher) -> dict[str, Any]:
    got = w.on(REPORTED)
    return json.loads(got[-1]) if got else {}


def problems(w: Watcher) -> list[str]:
    value = last_reported(w).get("problems")
    return value if isinstance(value, list) else ["(no problems key)"]


def retained_reported(broker: Broker) -> dict[str, Any]:
    """What a central tool that connects now reads: the retained `reported` only."""
    w = Watcher(broker.host, broker.port, REPORTED)
    try:
        assert w.wait_for(lambda m: bool(m), timeout=5), "no retained reported"
        return json.loads(w.on(REPORTED)[-1])
    finally:
        w.close()


async def test_unplugged_gps_and_dead_nfc_reader_are_reported(
    broker: Broker, tmp_path: Path
) -> None:
    w = Watcher(broker.host, broker.port)
    walk = [(34.7790, 113.7312), (34.7796, 113.7313)]
    async with GpsSimulator(walk=walk, speed=5, loop=True) as gps, Pn532Simulator() as nfc:
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            gps={"port": gps.port, "baud": 9600},
            nfc={"port": nfc.port, "baud": 115200, "poll_interval_s": 0.05},
        )
        async with Agent(cfg, health_every_s=0.2) as agent:
            await wait_until(lambda: problems(w) == [], what="healthy reported")
            gps.unplug()
            nfc.unplug()
            await wait_until(
                lambda: (
                    any("GPS port" in p for p in problems(w))
                    and any("PN532" in p for p in problems(w))
                ),
                what="both parts in reported.problems",
            )
            seen = retained_reported(broker)["problems"]
            assert any(p.startswith("GPS port") for p in seen), seen
            assert any(p.startswith("nfc: PN532") for p in seen), seen
            gps.replug()
            nfc.replug()
            await wait_until(lambda: problems(w) == [], timeout=20, what="parts back")
            assert agent.problems() == []
    w.close()


async def test_failed_sos_button_is_reported_while_offline_too(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # the board's GPIO library is missing
    cfg = make_config(tmp_path / "state", broker.port, buttons={"sos": 17, "led": 22})
    async with Agent(cfg, health_every_s=0.2) as agent:
        await wait_until(lambda: agent.link.ready)
    # Stopped: the retained `reported` still says what is broken.
    body = retained_reported(broker)
    assert [p for p in body["problems"] if p.startswith("buttons did not start")]


@pytest.mark.slow
async def test_rolled_back_config_is_reported_until_a_good_one(
    broker: Broker, tmp_path: Path
) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = local_config(tmp_path, broker, key)
    task = await start_run(local, w)
    try:
        gps = {"port": str(tmp_path / "no-such-tty"), "baud": 9600}
        w.publish(CONFIG_TOPIC, key.doc("config", body_of(local, gps=gps), ver=4))
        await wait_until(lambda: bool(acks(w)), timeout=30, what="rolled_back ack")
        await wait_until(
            lambda: any(p.startswith("config ver 4 rolled back") for p in problems(w)),
            what="rollback in reported",
        )
        [text] = [p for p in problems(w) if p.startswith("config ver 4")]
        assert "health_failed" in text and "no-such-tty" in text
        # A good config afterwards clears it.
        w.publish(CONFIG_TOPIC, key.doc("config", body_of(local), ver=5))
        await wait_until(lambda: len(acks(w)) == 2, timeout=30, what="second ack")
        assert acks(w)[1]["status"] == "applied"
        await wait_until(lambda: problems(w) == [], what="rollback cleared")
    finally:
        await stop_run(task)
    w.close()


def test_rollback_note_survives_until_commit_or_reset(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.drop("not staged: nothing to remember")
    assert store.rolled_back() is None
    store.stage("id-1", 9, {})
    store.drop("health_failed: camera: gone")
    assert store.rolled_back() == "config ver 9 rolled back: health_failed: camera: gone"
    assert ConfigStore(tmp_path).rolled_back() is not None  # across a restart
    store.reset()
    assert store.rolled_back() is None
