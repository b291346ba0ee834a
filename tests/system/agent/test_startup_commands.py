"""Commands and start-up (issue 18, points 1 and 4): a command that waits for a part waits for it
within a bound, then fails with a clear reason; a command is for now: the ops tool gives it an
`exp`, a device that gets it later acks `expired` and does not run it, and the tool says which
devices did not run it. Real agents, a real Mosquitto, the ops CLI as the staff run it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

import agent.vision.gateway
from agent.demo.broker import Broker
from agent.ops.fleet import AckBoard
from agent.ops.pushcmd import not_run
from agent.runtime.agent import Agent
from agent.vision.role import GatewayRole
from tests.kits.agents import DEV, OpsKey
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ops import dry, run, synced
from tests.kits.vision import background, gateway_config, write_video

CMD_TOPIC = f"grid/v1/{DEV}/cmd"
SNAPSHOT = {"action": "snapshot", "args": {"camera_id": "cam-plaza-1"}}


def cmd_acks(w: Watcher) -> list[dict[str, Any]]:
    return [e["body"] for e in w.events("/ack") if e["body"]["typ"] == "cmd"]


async def connect_once(cfg: Any) -> None:
    """One start, so that the broker keeps the device's session and queues what comes for it."""
    async with Agent(cfg, clock=synced()) as a:
        await wait_until(lambda: a.link.ready, what="first session")


@pytest.fixture
def slow_camera(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cameras take 1 s to open (an RTSP camera still booting): the injected fault."""
    real = agent.vision.gateway.open_source

    def opening_slowly(cam: Any, base_dir: Any) -> Any:
        source = real(cam, base_dir)
        open_now = source.open

        def late_open() -> None:
            time.sleep(1.0)  # in the capture thread, as a slow camera would block it
            open_now()

        source.open = late_open  # type: ignore[method-assign]
        return source

    monkeypatch.setattr(agent.vision.gateway, "open_source", opening_slowly)


async def test_snapshot_sent_while_the_gateway_was_offline_waits_for_its_camera(
    broker: Broker, tmp_path: Path, slow_camera: None
) -> None:
    """Reported: it failed with "this device has no working camera" a moment before the camera
    opened. Now it is applied to the running role and waits for the camera's first frame."""
    key = OpsKey("ops-a")
    video = write_video(tmp_path / "plaza.avi", [background() for _ in range(40)])
    cfg = gateway_config(tmp_path, broker, key, video)
    w = Watcher(broker.host, broker.port)
    try:
        await connect_once(cfg)
        now = int(time.time() * 1000)
        w.publish(CMD_TOPIC, key.doc("cmd", SNAPSHOT, ver=now, exp=now + 600_000))
        async with Agent(cfg, clock=synced()):
            await wait_until(lambda: bool(cmd_acks(w)), what="cmd ack")
            [ack] = cmd_acks(w)
            assert (ack["status"], ack.get("detail")) == ("applied", None), ack
            notices = [e["body"] for e in w.events("/evt/notice")]
            assert any(n["type"] == "snapshot" for n in notices), notices
    finally:
        w.close()


async def test_snapshot_of_a_camera_that_gives_no_frame_fails_within_its_bound(
    broker: Broker, tmp_path: Path
) -> None:
    key = OpsKey("ops-a")
    cfg = gateway_config(tmp_path, broker, key, tmp_path / "missing.avi")
    w = Watcher(broker.host, broker.port)
    try:
        async with Agent(cfg, clock=synced()) as a:
            assert isinstance(a.role, GatewayRole)
            a.role.snapshot_wait_s = 0.5
            await wait_until(lambda: a.link.ready, what="session")
            w.publish(CMD_TOPIC, key.doc("cmd", SNAPSHOT, ver=int(time.time() * 1000)))
            await wait_until(lambda: bool(cmd_acks(w)), what="cmd ack")
        [ack] = cmd_acks(w)
        assert (ack["status"], ack["reason"]) == ("rolled_back", "apply_failed")
        assert "'cam-plaza-1' gave no frame within 0.5 s (state " in ack["detail"], ack
    finally:
        w.close()


@pytest.fixture
def signing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    code, _, _ = run(capsys, "keygen", "--out", str(tmp_path / "ops.pem"), "--kid", "ops-t")
    assert code == 0
    return ["--signing-key", str(tmp_path / "ops.pem"), "--kid", "ops-t"]


def test_ops_cmd_expires_in_ten_minutes_by_default(
    capsys: pytest.CaptureFixture[str], signing: list[str], broker: Broker
) -> None:
    # A dry run runs every check of a real push, so it asks the broker about DEV (--force:
    # this broker never saw it).
    key = [*signing, "--port", str(broker.port), "--force"]
    before = int(time.time() * 1000)
    payload = dry(capsys, "cmd", DEV, "status_now", *key)["payload"]
    assert before + 600_000 <= payload["exp"] <= payload["iat"] + 600_000
    payload = dry(capsys, "cmd", DEV, "status_now", "--exp", "2", *key)["payload"]
    assert payload["exp"] == payload["iat"] + 120_000
    code, _, err = run(capsys, "cmd", DEV, "status_now", "--expires", "never", *key, "--dry-run")
    assert code != 0 and "--exp MINUTES" in err
    with pytest.raises(SystemExit):
        run(capsys, "cmd", DEV, "status_now", "--exp", "0", *key, "--dry-run")
    assert "more than 0" in capsys.readouterr().err


@pytest.mark.slow
async def test_a_command_that_got_no_ack_does_not_run_when_the_device_returns_after_exp(
    ops: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Reported: commands the tool called "no ack" (device offline) still ran when the device
    came back. Now they expire: the device acks `expired` and does not run them."""
    cfg = ops.config(modes={"profiles": {"normal": {"status_interval_s": 3600}}})
    w = Watcher(cfg.broker.host, cfg.broker.port)
    try:
        await connect_once(cfg)
        code, out = await ops(
            "cmd", DEV, "status_now", "--exp", "0.02", "--timeout", "0.5", *ops.signing()
        )
        assert code == 3, out  # no ack: the device is offline
        assert "not run so far (no ack): pd-0042" in " ".join(out.split()), out
        await asyncio.sleep(1.3)  # exp (1.2 s) passes while the device is away
        caplog.set_level(logging.INFO, logger="agent.documents.appliers")
        async with Agent(cfg, clock=synced()):
            await wait_until(lambda: bool(cmd_acks(w)), what="cmd ack")
        [ack] = cmd_acks(w)
        assert (ack["status"], ack["reason"]) == ("rejected", "expired"), ack
        assert "command status_now" not in caplog.text
        assert not w.on(f"grid/v1/{DEV}/status")
    finally:
        w.close()


def test_the_summary_names_the_devices_that_did_not_run_a_command() -> None:
    board = AckBoard("cmd", 5, {"pd-1": "a", "pd-2": "b", "pd-3": "c"})
    board.got["pd-1"] = {"body": {"status": "applied", "reason": None}}
    board.got["pd-2"] = {"body": {"status": "rejected", "reason": "expired"}}
    lines = not_run(board, exp=1_800_000_000_000)
    assert lines[0] == "not run: pd-2 (rejected expired)"
    assert lines[1].startswith("not run so far (no ack): pd-3; a device that gets the command ")
    assert "later it acks expired and does not" in lines[1]
