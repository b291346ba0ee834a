"""Operator traps seen in the field, on the ops tool's side (each reproduces one)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agent.config.model import parse
from agent.demo.broker import Broker
from agent.ops import fleet, output
from agent.ops.devices import DeviceRow
from agent.ops.mqtt import OpsClient, load_ops_config
from agent.runtime.agent import Agent
from tests.kits.agents import DEV
from tests.kits.mqtt import Watcher
from tests.kits.ops import Ops, import_tasks, json_lines, running, synced


def test_tilde_paths_are_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Trap: `~/` in ops.toml (and in the agent's config) was taken literally.
    monkeypatch.setenv("HOME", str(tmp_path))
    ops = tmp_path / "ops.toml"
    ops.write_text(
        '[broker]\ntls = true\nca_file = "~/ca.pem"\npassword_file = "~/.grid/pw"\n'
        'username = "ops-li"\n[signing]\nkey_file = "~/.grid/ops.pem"\nkid = "ops-2026a"\n'
    )
    cfg = load_ops_config(ops)
    assert cfg.signing.key_file == tmp_path / ".grid" / "ops.pem"
    assert cfg.broker.ca_file == tmp_path / "ca.pem"
    assert cfg.broker.password_file == tmp_path / ".grid" / "pw"
    agent = parse({"device": {"id": "pd-1", "role": "patrol", "state_dir": "~/state"}})
    assert agent.device.state_dir == tmp_path / "state"


# ----- against a real broker and agent --------------------------------------------------------


async def test_unknown_device_is_refused_and_a_forced_push_can_be_retracted(
    ops: Ops, broker: Broker
) -> None:
    # Trap: a typo in a device id left a retained document on the broker, no way to retract.
    tasks = await import_tasks(ops)
    w = Watcher(broker.host, broker.port)
    try:
        async with Agent(ops.config(), clock=synced()) as agent:
            await running(agent)
            code, out = await ops("push-tasks", "pd-0420", "--file", str(tasks), *ops.signing())
            assert code == 2 and "never seen on this broker" in out and "pd-0420" in out
            argv = ["push-tasks", "pd-0420", "--file", str(tasks), "--force", "--timeout", "1"]
            code, out = await ops(*argv, *ops.signing())
            assert code == 3 and "no ack" in out
        topic = "grid/v1/pd-0420/desired/tasks"
        code, out = await ops("retract", "pd-0420")
        assert code == 0 and f"{topic}: retained document removed" in out
        assert "grid/v1/pd-0420/desired/config: nothing retained" in out
        late = Watcher(broker.host, broker.port)  # a new subscriber gets nothing retained
        try:
            code, out = await ops("retract", "pd-0420", "--typ", "tasks")
            assert code == 0 and "nothing retained" in out
            assert not late.on(topic)
        finally:
            late.close()
    finally:
        w.close()


async def test_config_push_warns_and_shows_the_rejection_detail(ops: Ops) -> None:
    # Trap: a push turned a camera gateway into a patrol device and the tool said `applied`.
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        data = agent.cfg.model_dump(mode="json", exclude_none=True)
        data["device"]["role"] = "camera_gateway"
        data["cameras"] = [{"id": "cam-plaza-2", "source": "file:/nonexistent.mp4"}]
        src = ops.dir / "gw.json"
        src.write_text(json.dumps(data))
        # Reported: the tool printed "it will reject the document" and published anyway.
        code, out = await ops("push-config", DEV, "--file", str(src), *ops.signing())
        assert code == 2, out
        assert "role camera_gateway but the device is patrol: it will reject" in out
        assert "nothing sent" in out and "published" not in out
        argv = ["push-config", DEV, "--file", str(src), "--force", *ops.signing()]
        code, out = await ops(*argv)
        assert code == 1, out
        assert "role camera_gateway but the device is patrol" in out
        assert "sections cameras do not belong to a patrol device" in out
        assert "rejected" in out and "invalid_body" in out
        assert "device.role: this device is patrol" in out  # the ack's detail, shown
        assert agent.cfg.device.role == "patrol"


async def test_verify_with_no_messages_fails(ops: Ops) -> None:
    # Trap: `verify` of a device that sent nothing (or does not exist) said "clean".
    code, out = await ops("verify", "pd-9999", "--seconds", "1")
    assert code == 1 and "no messages from pd-9999" in out and "clean" not in out
    empty = ops.dir / "archive"
    empty.mkdir()
    code, out = await ops("verify", "pd-9999", "--archive", str(empty), broker=False)
    assert code != 0 and "clean" not in out


async def test_devices_shows_live_status_and_trouble(ops: Ops) -> None:
    # Trap: `devices` showed no health, and "last seen" came from retained messages.
    cfg = ops.config(modes={"profiles": {"normal": {"status_interval_s": 0.5}}})
    async with Agent(cfg, clock=synced()) as agent:
        await running(agent)
        code, out = await ops("devices", "--json", "--listen", "2")
        assert code == 0, out
        [row] = [r for r in json_lines(out) if r["dev"] == DEV]
        assert row["last_seen_ms"] is not None and row["status"]["outbox"]["depth"] >= 0
        assert row["zones"] == ["ruyihu", "ruyihu.cbd"]
        # No GPS receiver configured: no fix is nothing to miss (issue 18: it was blamed).
        assert row["status"]["gps"]["fix"] is None and row["trouble"] == []
        code, out = await ops("devices")
        assert code == 0 and "health=ok" in out and "1 devices: 1 ok, 0 in trouble" in out
    code, out = await ops("devices", "--json", "--listen", "0")
    [row] = [r for r in json_lines(out) if r["dev"] == DEV]
    assert row["last_seen_ms"] is None and "offline" in row["trouble"]


def test_a_long_wait_shows_progress(broker: Broker) -> None:
    # Trap: push-config waited 60 s in silence (the ack comes after the health window).
    buf = io.StringIO()
    o = output.make(stdout=buf, stderr=buf)
    board = fleet.AckBoard("config", 7, {DEV: "doc-1"})
    cfg = load_ops_config(None).broker.model_copy(update={"port": broker.port})
    with OpsClient(cfg) as client:
        client.subscribe([f"grid/v1/{DEV}/ack"])
        fleet.follow(client, board, 1.5, o, note_every_s=0.5)
    text = buf.getvalue()
    assert "waiting for acks: 0/1 after" in text and "(timeout 1.5 s)" in text
    assert "1 devices: 1 no ack" in text and board.exit_code() == 3


def test_config_warnings_compare_with_the_birth() -> None:
    row = DeviceRow(
        "gw-0007",
        True,
        None,
        3,
        "0.1.0",
        "camera_gateway",
        None,
        None,
        "normal",
        None,
        None,
        zones=["ruyihu", "ruyihu.lake"],
    )
    body = {"device": {"role": "patrol", "zones": ["ruyihu"]}, "gps": {"port": "/dev/ttyS0"}}
    out = fleet.config_warnings(body, row)
    assert out[0] == "role patrol but the device is camera_gateway: it will reject the document"
    assert out[1] == "zones ruyihu replace ruyihu, ruyihu.lake"
    assert out[2] == "sections gps do not belong to a camera_gateway device"
