"""NFC check-ins through the pty PN532 simulator and the real Pn532Reader."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from agent.patrol.config import PatrolConfig
from firmware_bridge.pn532_driver import Pn532Reader
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.aio import wait_until
from tests.kits.fb import scaled_sleep
from tests.kits.patrol import (
    at,
    checkin_payloads,
    cp,
    fix_at,
    outbox_events,
    record,
    rig,
    sha,
    task,
)

GATE, KIOSK = "04A1B2C3", "0416C6C2D73881"
TASKS = record(
    [task("t-tags", [cp("gate", at(0, 0), tags=(GATE,)), cp("kiosk", at(300, 0), tags=(KIOSK,))])]
)


async def tap(sim: Pn532Simulator, uid: str) -> None:
    """Hold a tag on the reader until it was polled a few times, then take it away."""
    sim.present(uid)
    await sim.wait_commands(0x4A, sim.commands.count(0x4A) + 4)
    sim.remove()
    await sim.wait_commands(0x4A, sim.commands.count(0x4A) + 3)


async def test_tags_check_in_at_once_unknown_tag_is_only_feedback(tmp_path: Path) -> None:
    settings = PatrolConfig(tick_s=0.05, fix_max_age_s=0.5)
    async with (
        Pn532Simulator() as sim,
        Pn532Reader(sim.port, 115200, poll_interval_s=0.01, sleep=scaled_sleep(0.05)) as reader,
    ):
        await wait_until(lambda: reader.status()["present"], what="PN532 ready")
        async with rig(tmp_path / "s", TASKS, tags=reader.scans(), settings=settings) as (
            driver,
            outbox,
            _media,
            fed,
        ):
            # A current fix 8 m from the gate: attached to the NFC check-in.
            here = fix_at(at(8, 0), acc=4.0)
            await fed.fix(here)
            await wait_until(lambda: driver.current_fix()[0] is not None, what="fix taken")
            await tap(sim, GATE)
            await wait_until(lambda: fed.feedback == ["ok"], what="gate check-in")

            await tap(sim, "DEADBEEF")  # not a checkpoint: told so, nothing stored
            await wait_until(lambda: fed.feedback == ["ok", "error"], what="unknown tag")
            await tap(sim, GATE.lower())  # already checked in: acknowledged, not stored again
            await wait_until(lambda: len(fed.feedback) == 3, what="repeat scan")
            assert fed.feedback[-1] == "ok"

            await asyncio.sleep(0.6)  # the fix is now stale: no position on the next one
            await tap(sim, KIOSK)
            await wait_until(lambda: len(fed.feedback) == 4, what="kiosk check-in")
            await driver.drain()
            payloads = await checkin_payloads(outbox)
            patrol = await outbox_events(outbox, "patrol")
            everything = await outbox_events(outbox)
    gate, kiosk = (json.loads(p)["body"] for p in payloads)
    assert (gate["checkpoint_id"], gate["method"], gate["tag_uid"]) == ("gate", "nfc", GATE)
    assert (gate["lat"], gate["lon"]) == (here.lat, here.lon)
    assert gate["fix"] == "3d" and 7.5 < gate["dist_m"] < 8.5 and gate["acc_m"] == 4.0
    assert gate["gps_ts"] == here.utc_ms and gate["sats"] == 9 and gate["photos"] == []
    assert (kiosk["checkpoint_id"], kiosk["tag_uid"]) == ("kiosk", KIOSK)
    assert kiosk["fix"] == "none"
    for key in ("lat", "lon", "acc_m", "sats", "hdop", "gps_ts", "dist_m"):
        assert kiosk[key] is None, key
    assert gate["prev"] is None and kiosk["prev"] == sha(payloads[0])
    assert [p["body"]["event"] for p in patrol] == ["started", "completed"]
    assert patrol[-1]["body"]["done"] == 2 and patrol[-1]["body"]["total"] == 2
    # The unknown tag and the repeat left no trace in the outbox.
    kinds = sorted(e["kind"] for e in everything)
    assert kinds == ["checkin", "checkin", "notice", "patrol", "patrol"]  # notice: state_reset
    assert reader.status()["scans"] == 4


async def test_tag_of_a_task_outside_its_window_is_refused(tmp_path: Path) -> None:
    later = record(
        [task("t-later", [cp("gate", at(0, 0), tags=(GATE,))], start=4 * 10**12, end=5 * 10**12)]
    )
    async with rig(tmp_path / "s", later) as (driver, outbox, _media, fed):
        await fed.tag(GATE)
        await wait_until(lambda: fed.feedback == ["error"], what="refused")
        await driver.drain()
        assert await outbox_events(outbox, "checkin") == []
