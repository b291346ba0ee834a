"""patrol.json is written when the patrol's state changes, not every save interval while only
the position of the last fix moves.

Before, a device standing still rewrote the file (write, fsync, rename, folder fsync) every
`save_interval_s` because the outlier gate's anchor moved with each fix: most of an idle patrol
device's 4.4 MB/h of flash writes (docs/hardware.md). Dwell runs are still saved that often,
the exit save still writes the newest gate, and an agent that restarts from an older gate
(a crash between saves) re-anchors it and still checks in.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from agent.patrol.config import PatrolConfig
from tests.kits.aio import wait_until
from tests.kits.patrol import Fed, at, checkin_payloads, cp, fix_at, record, rig, task

SETTINGS = PatrolConfig(tick_s=0.05, save_interval_s=0.1, reap_interval_s=0.2)
HOME, NEAR = at(0, 0), at(200, 0)
TASKS = record([task("t-1", [cp("near", NEAR, dwell=5)])])


def saved(state: Path) -> dict[str, Any]:
    return json.loads((state / "patrol.json").read_text())


def identity(state: Path) -> tuple[int, int]:
    st = os.stat(state / "patrol.json")
    return st.st_ino, st.st_mtime_ns  # a rewrite is a new file renamed over the old one


async def walk(fed: Fed, where: tuple[float, float], t0: int, n: int) -> int:
    """n fixes at `where`, one second of fix time apart from t0; the last fix time."""
    for i in range(n):
        await fed.fix(fix_at(where, utc_ms=t0 + i * 1000))
    return t0 + (n - 1) * 1000


async def test_standing_still_does_not_rewrite_patrol_json(tmp_path: Path) -> None:
    state = tmp_path / "s"
    t0 = int(time.time() * 1000)
    async with rig(state, TASKS, settings=SETTINGS) as (driver, _outbox, _media, fed):
        await walk(fed, HOME, t0, 2)
        await wait_until(lambda: (state / "patrol.json").exists(), what="first save")
        await wait_until(lambda: driver.current_fix()[0] is not None, what="fix taken")
        before = identity(state)
        last = await walk(fed, HOME, t0 + 2000, 20)  # the gate's anchor moves with each fix
        await wait_until(lambda: driver.current_fix()[0].utc_ms == last, what="fixes taken")
        for _ in range(8):  # several save intervals and ticks
            await driver.drain()
            await asyncio.sleep(0.05)
        assert identity(state) == before
        assert saved(state)["engine"]["gate"]["anchor"]["utc_ms"] < last
    # The exit save writes the newest gate.
    assert saved(state)["engine"]["gate"]["anchor"]["utc_ms"] == last


async def test_a_dwell_run_is_still_saved_every_interval(tmp_path: Path) -> None:
    state = tmp_path / "s"
    t0 = int(time.time() * 1000)
    async with rig(state, TASKS, settings=SETTINGS) as (_driver, _outbox, _media, fed):
        await walk(fed, NEAR, t0, 3)  # inside "near": a run starts, 3 s of its 5 s dwell

        def run_saved() -> bool:
            if not (state / "patrol.json").exists():
                return False
            return "near" in saved(state)["engine"]["progress"]["t-1"]["runs"]

        await wait_until(run_saved, what="the live dwell run in patrol.json")


async def test_restart_from_an_older_gate_still_checks_in(tmp_path: Path) -> None:
    state, crashed = tmp_path / "s", tmp_path / "patrol.json.at-crash"
    t0 = int(time.time() * 1000)
    async with rig(state, TASKS, settings=SETTINGS) as (driver, _outbox, _media, fed):
        await walk(fed, HOME, t0, 3)
        await wait_until(lambda: (state / "patrol.json").exists(), what="first save")
        last = await walk(fed, at(100, 0), t0 + 60_000, 3)  # walked off: position only
        await wait_until(lambda: driver.current_fix()[0].utc_ms == last, what="fixes taken")
        await driver.drain()
        shutil.copy(state / "patrol.json", crashed)  # what a crash now would leave
    shutil.copy(crashed, state / "patrol.json")
    assert saved(state)["engine"]["gate"]["anchor"]["utc_ms"] < t0 + 60_000
    async with rig(state, TASKS, settings=SETTINGS) as (driver, outbox, _media, fed):
        # 200 m from the stale anchor: rejected until three fixes agree, then accepted in order.
        await walk(fed, NEAR, t0 + 120_000, 10)
        await wait_until(lambda: fed.feedback == ["ok"], what="check-in")
        await driver.drain()
        bodies = [json.loads(p)["body"] for p in await checkin_payloads(outbox)]
    assert [(b["checkpoint_id"], b["method"]) for b in bodies] == [("near", "gps")]
