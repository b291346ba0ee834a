"""Remote config traps seen in the field: precedence, role changes, blame, reset, snapshots."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent import cli
from agent.config.model import load
from agent.demo.broker import Broker
from agent.documents.remote_config import blame, health_problems, remote_config
from agent.errors import ConfigError
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ota import CONFIG_TOPIC, acks, body_of, start_run, stop_run


def births(w: Watcher, since: int = 0) -> list[dict[str, Any]]:
    return [json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")[since:]]


def all_acks(w: Watcher, typ: str) -> list[dict[str, Any]]:
    return [e["body"] for e in w.events("/ack") if e["body"]["typ"] == typ]


def toml_file(path: Path, data: dict[str, Any]) -> Path:
    """Write a config mapping as TOML (only the shapes make_config produces)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)

    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in values.items() if v is not None]
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())
    return path


async def committed(tmp_path: Path, ver: int) -> None:
    """Until the config passed its window and was committed (the ack goes out just before)."""
    applied = tmp_path / "state" / "config" / "applied.json"
    pending = tmp_path / "state" / "config" / "pending.json"

    def done() -> bool:
        return applied.exists() and not pending.exists()

    await wait_until(done, what="committed")
    assert json.loads(applied.read_text())["ver"] == ver


def local_file(tmp_path: Path, broker: Broker, key: OpsKey, **sections: Any) -> Path:
    cfg = make_config(
        tmp_path / "state", broker.port, key, sync={"config_health_window_s": 1.0}, **sections
    )
    return toml_file(tmp_path / "agent.toml", cfg.model_dump(mode="json", exclude_unset=True))


# ----- pure parts ------------------------------------------------------------------------------
def test_a_config_may_not_change_the_role() -> None:
    local = make_config(Path("/tmp/s"), 1883)
    with pytest.raises(ConfigError) as err:
        remote_config(local, body_of(local, device={"role": "camera_gateway"}))
    assert err.value.problems[0][0] == "device.role"
    assert "patrol" in err.value.problems[0][1]


def test_blame_counts_only_what_failed_after_the_switch() -> None:
    before = health_problems(connected=True, devices={"camera cam-2": "state failed", "gps": None})
    after = health_problems(
        connected=True, devices={"camera cam-2": "state failed", "gps": "no fix data"}
    )
    assert blame(before, after) == ["gps: no fix data"]
    assert blame(before, before) == []
    assert blame({}, health_problems(connected=False, devices={})) == ["broker: not reachable"]


# ----- against a real broker ------------------------------------------------------------------
async def test_role_change_is_rejected_with_the_reason(broker: Broker, tmp_path: Path) -> None:
    # Trap: a push turned a gateway into a patrol device and the tool said `applied`.
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = load(local_file(tmp_path, broker, key))
    task = await start_run(local, w)
    try:
        body = body_of(local, device={"role": "camera_gateway"})
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=5))
        await wait_until(lambda: bool(acks(w)), what="config ack")
        [ack] = acks(w)
        assert (ack["status"], ack["reason"]) == ("rejected", "invalid_body")
        assert "device.role" in ack["detail"]
    finally:
        await stop_run(task)
    w.close()


async def test_a_check_failing_before_the_switch_does_not_roll_back(
    broker: Broker, tmp_path: Path
) -> None:
    # Trap: a harmless change (status interval) was rolled back for a device already missing.
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    gps = {"port": str(tmp_path / "no-such-tty"), "baud": 9600}
    local = load(local_file(tmp_path, broker, key, gps=gps))
    task = await start_run(local, w)
    try:
        body = body_of(local, modes={"profiles": {"normal": {"status_interval_s": 30.0}}})
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=8))
        await wait_until(lambda: bool(acks(w)), timeout=30, what="config ack")
        assert [(a["status"], a["reason"]) for a in acks(w)] == [("applied", None)]
    finally:
        await stop_run(task)
    w.close()


async def test_rollback_ack_names_the_failing_check(broker: Broker, tmp_path: Path) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = load(local_file(tmp_path, broker, key))
    task = await start_run(local, w)
    try:
        gps = {"port": str(tmp_path / "no-such-tty"), "baud": 9600}
        w.publish(CONFIG_TOPIC, key.doc("config", body_of(local, gps=gps), ver=4))
        await wait_until(lambda: bool(acks(w)), timeout=30, what="rolled_back ack")
        [ack] = acks(w)
        assert (ack["status"], ack["reason"]) == ("rolled_back", "health_failed")
        assert ack["detail"].startswith("gps: GPS port ")
    finally:
        await stop_run(task)
    w.close()


async def test_local_edit_after_a_push_wins_and_says_so(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Trap: after a push, restarting with the original file silently ran the pushed config.
    caplog.set_level(logging.INFO)
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    path = local_file(tmp_path, broker, key)
    local = load(path)
    task = await start_run(local, w)
    try:
        body = body_of(local, modes={"default": "holiday"})
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=7))
        await wait_until(lambda: bool(acks(w)), what="config ack")
        assert acks(w)[0]["status"] == "applied"
        await committed(tmp_path, 7)
    finally:
        await stop_run(task)
    # Restarting with the same file: the remote config runs, and the log says so.
    caplog.clear()
    seen = len(births(w))
    task = await start_run(local, w)
    try:
        await wait_until(lambda: any(b.get("config_ver") == 7 for b in births(w, seen)))
        # The start-up line comes once the agent is ready, after its birth (sent at connect).
        await wait_until(lambda: "running as" in caplog.text, what="start-up line")
        assert "remote config ver 7" in caplog.text
    finally:
        await stop_run(task)
    # The staff edit the local file: the edit wins, loudly; status/birth say config_ver null.
    text = path.read_text().replace("[modes]", '[modes]\ndefault = "major_event"')
    if "[modes]" not in text:
        text += '\n[modes]\ndefault = "major_event"\n'
    path.write_text(text)
    edited = load(path)
    caplog.clear()
    seen = len(births(w))
    task = await start_run(edited, w)
    try:
        await wait_until(lambda: len(births(w, seen)) > 0)
        birth = births(w, seen)[-1]
        assert (birth["config_ver"], birth["mode"]) == (None, "major_event")
        assert "the local file wins" in caplog.text
        await wait_until(lambda: "running as" in caplog.text, what="start-up line")
        assert "(no remote config)" in caplog.text
    finally:
        await stop_run(task)
    w.close()


async def test_config_reset_goes_back_to_the_local_file(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    path = local_file(tmp_path, broker, key)
    local = load(path)
    task = await start_run(local, w)
    try:
        body = body_of(local, modes={"default": "holiday"})
        w.publish(CONFIG_TOPIC, key.doc("config", body, ver=9))
        await committed(tmp_path, 9)
    finally:
        await stop_run(task)
    assert cli.main(["config", "show", "--config", str(path)]) == 0
    assert "remote config ver 9" in capsys.readouterr().out
    assert cli.main(["config", "reset", "--config", str(path)]) == 0
    assert "ver 9 dropped" in capsys.readouterr().out
    seen = len(births(w))
    task = await start_run(local, w)
    try:
        await wait_until(lambda: len(births(w, seen)) > 0)
        assert (births(w, seen)[-1]["config_ver"], births(w, seen)[-1]["mode"]) == (None, "normal")
    finally:
        await stop_run(task)
    assert cli.main(["config", "show", "--config", str(path)]) == 0
    assert "(no remote config)" in capsys.readouterr().out
    w.close()


async def test_snapshot_args_are_checked_and_failures_acked(broker: Broker, tmp_path: Path) -> None:
    # Traps: `--arg camera=` was silently ignored; a failed snapshot was acked `applied`.
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    local = load(local_file(tmp_path, broker, key, camera={"source": f"file:{tmp_path}/none"}))
    task = await start_run(local, w)
    cmd_topic = f"grid/v1/{DEV}/cmd"
    try:
        bad = {"action": "snapshot", "args": {"camera": "cam-2"}}
        w.publish(cmd_topic, key.doc("cmd", bad, ver=1))
        await wait_until(lambda: bool(all_acks(w, "cmd")), what="cmd ack")
        [ack] = all_acks(w, "cmd")
        assert (ack["status"], ack["reason"]) == ("rejected", "invalid_body")
        assert "camera_id" in ack["detail"]
        w.publish(cmd_topic, key.doc("cmd", {"action": "snapshot", "args": {}}, ver=2))
        await wait_until(lambda: len(all_acks(w, "cmd")) == 2, timeout=30, what="cmd ack")
        ack = all_acks(w, "cmd")[1]
        assert (ack["status"], ack["reason"]) == ("rolled_back", "apply_failed")
        assert "snapshot failed" in ack["detail"]
    finally:
        await stop_run(task)
    w.close()
