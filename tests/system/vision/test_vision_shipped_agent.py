"""The real agent and Mosquitto, the shipped lake camera on a file: someone walks into the water."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits import people as people_scenes
from tests.kits.agents import OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.paths import REPO as ROOT
from tests.kits.shipped_scenes import FPS, walk_to_the_water
from tests.kits.vision import write_video

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not people_scenes.available(),
        reason="../shared/data/images is absent (the walker is cut from it)",
    ),
]


@pytest.fixture
def night(monkeypatch):
    """Local time zone where it is now 22:xx: the shipped water zone watches 20:00-06:00."""
    offset = (22 - time.gmtime().tm_hour) % 24
    offset = offset - 24 if offset > 12 else offset
    monkeypatch.setenv("TZ", f"GET{-offset:+d}")  # POSIX: the sign is west of Greenwich
    time.tzset()
    assert 20 <= time.localtime().tm_hour <= 23
    yield
    monkeypatch.undo()
    time.tzset()


async def test_agent_reports_the_water_zone_start_and_end(broker: Broker, tmp_path: Path, night):
    frames, _entered = walk_to_the_water()
    video = write_video(tmp_path / "shore.avi", frames, FPS)
    raw = tomllib.loads((ROOT / "configs" / "camera_gateway.toml").read_text())
    (lake,) = [c for c in raw["cameras"] if c["id"] == "cam-lake-1"]
    cfg = make_config(
        tmp_path / "state",
        broker.port,
        OpsKey("ops-a"),
        device={"role": "camera_gateway"},
        # The shipped event-stream example points at a camera that is not here: left out.
        cameras=[{**{k: v for k, v in lake.items() if k != "events"}, "source": f"file:{video}"}],
    )
    w = Watcher(broker.host, broker.port)

    def water() -> list[dict]:
        return [e["body"] for e in w.events("/evt/detection") if e["body"]["rule"] == "water_zone"]

    # The recording plays in real time at the camera's 5 fps (about 25 s to the end event).
    async with Agent(cfg, clock=SystemClock(synced=lambda: True)):
        await wait_until(
            lambda: any(b["state"] == "end" for b in water()), timeout=120, what="water end"
        )
    w.close()
    bodies = water()
    assert [b["state"] for b in bodies if b["state"] != "update"][:2] == ["start", "end"]
    start = bodies[0]
    assert (start["camera_id"], start["zone"], start["origin"]) == ("cam-lake-1", "shore", "edge")
    assert start["count"] == 1 and {b[5] for b in start["boxes"]} == {"person"}
    assert len({b["track"] for b in bodies}) == 1
