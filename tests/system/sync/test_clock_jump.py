"""GPS time against an unsynchronised OS clock: ts_src gps, and one clock_jump notice."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.clock import SystemClock
from agent.runtime.agent import Agent
from firmware_bridge.types import Fix
from tests.kits.agents import make_config


async def test_gps_time_and_clock_jump_notice(tmp_path: Path) -> None:
    os_wall = 1_800_000_000_000
    mono = {"ms": 10_000}
    clock = SystemClock(
        boot="b",
        synced=lambda: False,
        has_rtc=False,
        wall_ms=lambda: os_wall,
        mono_ms=lambda: mono["ms"],
    )
    cfg = make_config(tmp_path / "state", 1)  # no broker: everything stays in the outbox
    async with Agent(cfg, clock=clock) as agent:
        before = await agent.outbox.append("incident", {"n": 1})
        gps_utc = os_wall + 42_000  # the OS clock is 42 s behind
        agent.clock.on_fix(Fix(valid=True, utc_ms=gps_utc, lat=34.7, lon=113.7, mono_ms=10_000))
        agent.clock.on_fix(
            Fix(valid=True, utc_ms=gps_utc + 1000, lat=34.7, lon=113.7, mono_ms=11_000)
        )  # the same offset: no second notice
        mono["ms"] = 11_500
        after = await agent.outbox.append("incident", {"n": 2})

        async def jumps() -> list[dict]:
            rows = await agent.outbox.fetch((-1, -1), 100)
            bodies = [json.loads(r.payload)["body"] for r in rows if r.topic.endswith("notice")]
            return [b for b in bodies if b["type"] == "clock_jump"]

        found = await jumps()
        for _ in range(500):  # the notice is stored by its own task
            if found:
                break
            await asyncio.sleep(0.01)
            found = await jumps()
        assert found == [{"type": "clock_jump", "delta_ms": 42_000}]
    first, second = json.loads(before.payload), json.loads(after.payload)
    assert (first["ts_src"], first["time_ok"]) == ("none", False)
    assert (second["ts_src"], second["time_ok"], second["ts"]) == ("gps", True, gps_utc + 1500)
