"""The camera gateway role end to end: video in, detection events and photos at the broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.vision import background, gateway_config, with_boxes, write_video


def plaza_video(tmp_path: Path) -> Path:
    """Two boxes crossing the plaza after five still frames, then fifteen still ones."""
    bg = background()
    frames = [bg.copy() for _ in range(5)]
    for i in range(30):
        boxes = [(10 + 18 * i, 280, 70, 50), (600 - 15 * i, 380, 50, 40)]
        frames.append(with_boxes(bg, boxes, 128))
    frames += [bg.copy() for _ in range(15)]
    return write_video(tmp_path / "plaza.avi", frames)


async def answers_snapshot_cmd(agent: Agent, w: Watcher, key: OpsKey) -> None:
    """A signed `snapshot` command: its notice, its photo's chunks and its `applied` ack."""
    await wait_until(lambda: agent.link.ready)
    w.publish(
        f"grid/v1/{DEV}/cmd",
        key.doc(
            "cmd",
            {"action": "snapshot", "args": {"camera_id": "cam-plaza-1"}},
            ver=int(time.time() * 1000),
        ),
    )
    await wait_until(
        lambda: any(e["body"].get("type") == "snapshot" for e in w.events("/evt/notice")),
        what="snapshot",
    )
    snap = next(e["body"] for e in w.events("/evt/notice") if e["body"]["type"] == "snapshot")
    await wait_until(
        lambda: w.media_whole(DEV, snap["photos"][0]["media_id"], snap["photos"][0]["sha256"]),
        what="cmd photo",
    )
    # The ack is stored when the applier returns, so it may come after the chunks.
    await wait_until(lambda: any(e["body"]["typ"] == "cmd" for e in w.events("/ack")))
    acks = [e["body"] for e in w.events("/ack")]
    assert acks[-1]["typ"] == "cmd" and acks[-1]["status"] == "applied"


async def test_gateway_reports_motion_with_snapshot_and_answers_snapshot_cmd(
    broker: Broker, tmp_path: Path
) -> None:
    video = plaza_video(tmp_path)
    key = OpsKey("ops-a")
    w = Watcher(broker.host, broker.port)
    cfg = gateway_config(tmp_path, broker, key, video)
    async with Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent:
        await wait_until(
            lambda: any(e["body"]["state"] == "start" for e in w.events("/evt/detection")),
            what="start",
        )
        start = next(e["body"] for e in w.events("/evt/detection") if e["body"]["state"] == "start")
        assert start["camera_id"] == "cam-plaza-1" and start["origin"] == "edge"
        assert start["rule"] == "motion" and start["zone"] == "plaza"
        ref = start["photos"][0]
        await wait_until(
            lambda: w.media_whole(DEV, ref["media_id"], ref["sha256"]), what="snapshot chunks"
        )

        def media_event() -> list[dict]:
            # The media event follows the last chunk (§4): it may arrive a moment later.
            return [
                e["body"]
                for e in w.events("/evt/media")
                if e["body"]["media_id"] == ref["media_id"]
            ]

        await wait_until(lambda: bool(media_event()), what="media event")
        assert media_event()[0]["ref"]["kind"] == "detection"
        status = await agent.status_body()
        assert status["cameras"]["cam-plaza-1"]["state"] in {"running", "reopening"}
        await answers_snapshot_cmd(agent, w, key)
    states = [json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")]
    assert states[0]["role"] == "camera_gateway"
    w.close()
