"""Remote config: applied after a healthy window, rolled back on a dead broker or device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.documents.remote_config import remote_config
from agent.errors import ConfigError
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ota import CONFIG_TOPIC, acks, body_of, local_config, start_run, stop_run


def test_local_only_keys_are_refused_and_kept() -> None:
    local = make_config(Path("/tmp/state-x"), 1883, broker={"username": "dev"})
    with pytest.raises(ConfigError) as err:
        remote_config(local, {"device": {"id": "other", "role": "patrol"}})
    assert err.value.problems[0][0] == "device.id"
    new = remote_config(local, {"device": {"role": "patrol", "zones": ["a"]}})
    assert new.device.id == DEV and new.broker.username == "dev"
    assert new.device.zones == ["a"] and str(new.device.state_dir) == "/tmp/state-x"
    # Keys the body leaves out take their defaults.
    assert new.sync.inflight_window == 100


async def test_config_applied_after_health_window_and_survives_restart(
    broker: Broker, tmp_path: Path
) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = local_config(tmp_path, broker, key)
    task = await start_run(local)
    try:
        body = body_of(local, modes={"default": "holiday"})
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=7), retain=True)
        await wait_until(lambda: bool(acks(w)), what="config ack")
        assert acks(w) == [
            {
                "ref": acks(w)[0]["ref"],
                "typ": "config",
                "ver": 7,
                "status": "applied",
                "reason": None,
            }
        ]
        births = [json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")]
        await wait_until(
            lambda: any(
                json.loads(p).get("config_ver") == 7 for p in w.on(f"grid/v1/{DEV}/reported")
            ),
            timeout=5,
        )
    finally:
        await stop_run(task)
    assert any(b.get("mode") == "holiday" for b in births)
    # A restart keeps the applied config (the local file alone says normal).
    seen = len(w.on(f"grid/v1/{DEV}/state"))
    task = await start_run(local)
    try:
        await wait_until(
            lambda: any(
                json.loads(p).get("config_ver") == 7 for p in w.on(f"grid/v1/{DEV}/state")[seen:]
            )
        )
        assert len(acks(w)) == 1  # the retained document is not acked again
    finally:
        await stop_run(task)
    w.close()


async def test_unreachable_broker_rolls_back(broker: Broker, tmp_path: Path) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = local_config(tmp_path, broker, key)
    task = await start_run(local, w)
    try:
        dead = {"host": "127.0.0.1", "port": 1}  # nothing listens there
        w.publish(CONFIG_TOPIC, key.doc("config", body_of(local, broker=dead), ver=3))
        await wait_until(lambda: bool(acks(w)), timeout=30, what="rolled_back ack")
        assert (acks(w)[0]["status"], acks(w)[0]["reason"]) == ("rolled_back", "health_failed")
        await wait_until(lambda: json.loads(w.on(f"grid/v1/{DEV}/state")[-1])["online"] is True)
    finally:
        await stop_run(task)
    w.close()


async def test_missing_serial_device_rolls_back(broker: Broker, tmp_path: Path) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = local_config(tmp_path, broker, key)
    task = await start_run(local, w)
    try:
        gps = {"port": str(tmp_path / "no-such-tty"), "baud": 9600}
        w.publish(CONFIG_TOPIC, key.doc("config", body_of(local, gps=gps), ver=4))
        await wait_until(lambda: bool(acks(w)), timeout=30, what="rolled_back ack")
        assert (acks(w)[0]["status"], acks(w)[0]["reason"]) == ("rolled_back", "health_failed")
    finally:
        await stop_run(task)
    w.close()


async def test_key_rotation_takes_effect_after_apply(broker: Broker, tmp_path: Path) -> None:
    old, new = OpsKey("ops-old"), OpsKey("ops-new")
    w = Watcher(broker.host, broker.port)
    local = local_config(tmp_path, broker, old)
    task = await start_run(local, w)
    try:
        rotated = body_of(
            local, trust={"ops_keys": [{"kid": new.kid, "public_key": new.public_b64}]}
        )
        w.publish(CONFIG_TOPIC, old.doc("config", rotated, ver=10))
        await wait_until(lambda: bool(acks(w)), what="rotation applied")
        assert acks(w)[0]["status"] == "applied"
        mode_topic = f"grid/v1/{DEV}/desired/mode"
        w.publish(mode_topic, old.doc("mode", {"mode": "holiday"}, ver=1))
        await wait_until(lambda: any(e["body"]["typ"] == "mode" for e in w.events("/ack")))
        assert [e["body"]["reason"] for e in w.events("/ack") if e["body"]["typ"] == "mode"] == [
            "unknown_key"
        ]
        w.publish(mode_topic, new.doc("mode", {"mode": "holiday"}, ver=2))
        await wait_until(lambda: sum(e["body"]["typ"] == "mode" for e in w.events("/ack")) == 2)
        assert [e["body"]["status"] for e in w.events("/ack") if e["body"]["typ"] == "mode"][
            -1
        ] == "applied"
    finally:
        await stop_run(task)
    w.close()


async def test_apply_survives_a_restart_in_the_health_window(
    broker: Broker, tmp_path: Path
) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = make_config(tmp_path / "state", broker.port, key, sync={"config_health_window_s": 3.0})
    task = await start_run(local, w)
    body = body_of(local, modes={"default": "major_event"})
    try:
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=21))
        staged = tmp_path / "state" / "config" / "pending.json"
        await wait_until(staged.exists, what="staged")
        # The agent restarts with the staged config: stop it inside the health window.
        await wait_until(
            lambda: any(
                json.loads(p).get("mode") == "major_event" for p in w.on(f"grid/v1/{DEV}/state")
            ),
            what="switched",
        )
    finally:
        await stop_run(task)
    assert not acks(w) and staged.exists()  # no ack yet: the window did not end
    task = await start_run(local, w)
    try:
        await wait_until(lambda: bool(acks(w)), what="ack after restart")
        assert [(a["status"], a["ver"]) for a in acks(w)] == [("applied", 21)]
        # The ack is stored first, the switch committed right after it.
        await wait_until(lambda: not staged.exists(), what="committed")
        assert json.loads((tmp_path / "state" / "config" / "applied.json").read_text())["ver"] == 21
    finally:
        await stop_run(task)
    w.close()
