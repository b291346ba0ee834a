"""Early photos: a photo checkpoint's photo is taken while the dwell runs (patrol/early.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.patrol.camera import Camera, read_gps
from agent.patrol.config import PatrolConfig
from agent.patrol.driver import PatrolDriver
from tests.kits.aio import wait_until
from tests.kits.patrol import (
    at,
    camera_cfg,
    cp,
    fix_at,
    jpeg_folder,
    outbox_events,
    record,
    rig,
    task,
)

T0 = int(time.time() * 1000) - 60_000


def early(driver: PatrolDriver) -> dict[str, int]:
    stats: dict[str, int] = driver.status()["patrol"]["early_photos"]
    return stats


def photo_task() -> dict[str, Any]:
    return record([task("t", [cp("kiosk", at(0, 0), photo=True), cp("far", at(900, 0))])])


async def test_photo_is_taken_during_the_dwell_and_used_by_the_checkin(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with (
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(state, photo_task(), camera=cam) as (driver, outbox, _media, fed),
    ):
        await fed.fix(fix_at(at(1, 1), utc_ms=T0))  # confident at once: the run is confirmed
        await wait_until(lambda: early(driver)["taken"] == 1, what="early photo")
        assert await outbox_events(outbox, "checkin") == []
        for i in range(1, 12):
            await fed.fix(fix_at(at(1, 1), utc_ms=T0 + i * 1000))
        await wait_until(lambda: driver.reporter.counts.checkins == 1, what="check-in")
        await driver.drain()
        [checkin] = await outbox_events(outbox, "checkin")
        [ref] = checkin["body"]["photos"]
        # The photo was taken at the first fix, before the deciding one, and only once.
        taken = read_gps(str(state / "media" / f"{ref['sha256']}.jpg"))["utc_ms"]
        assert taken == T0 < checkin["body"]["gps_ts"]
        assert early(driver) == {"taken": 1, "failed": 0, "used": 1, "unused": 0}
        assert cam.status()["photos"] == 1
        [media_evt] = await outbox_events(outbox, "media")
        assert media_evt["body"]["ref"] == {"kind": "checkin", "id": checkin["id"]}


async def test_a_run_that_ends_without_a_checkin_leaves_its_photo_unnamed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with (
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(state, photo_task(), camera=cam) as (driver, outbox, _media, fed),
    ):
        await fed.fix(fix_at(at(1, 1), utc_ms=T0))
        await wait_until(lambda: early(driver)["taken"] == 1, what="early photo")
        for i, north in enumerate([10, 20, 30, 40, 50], start=1):  # off at 10 m/s: run ends
            await fed.fix(fix_at(at(north, 0), utc_ms=T0 + i * 1000))
        await wait_until(lambda: early(driver)["unused"] == 1, what="photo dropped")
        await driver.drain()
        assert await outbox_events(outbox, "checkin") == []
        assert await outbox_events(outbox, "media") == []  # never named: the reaper's orphan


async def test_without_early_photos_the_checkin_takes_its_own(tmp_path: Path) -> None:
    state = tmp_path / "state"
    settings = PatrolConfig(tick_s=0.05, reap_interval_s=0.2, early_photo=False)
    async with (
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(state, photo_task(), camera=cam, settings=settings) as (driver, outbox, _m, fed),
    ):
        for i in range(12):
            await fed.fix(fix_at(at(1, 1), utc_ms=T0 + i * 1000))
        await wait_until(lambda: driver.reporter.counts.checkins == 1, what="check-in")
        await driver.drain()
        [checkin] = await outbox_events(outbox, "checkin")
        [ref] = checkin["body"]["photos"]
        taken = read_gps(str(state / "media" / f"{ref['sha256']}.jpg"))["utc_ms"]
        assert taken == checkin["body"]["gps_ts"]  # taken at the deciding fix
        assert early(driver)["taken"] == 0


async def test_reach_speed_from_the_config_reaches_the_rule(tmp_path: Path) -> None:
    # At the centre, one fix a second: with reach (2 m/s) the check-in comes after 5 s of
    # fixes; with reach_speed_mps = 0 from [patrol] it takes the full 10 s.
    tasks = record([task("t", [cp("a", at(0, 0)), cp("far", at(900, 0))])])
    for speed, fixes_needed in ((2.0, 6), (0.0, 11)):
        settings = PatrolConfig(tick_s=0.05, reap_interval_s=0.2, reach_speed_mps=speed)
        state = tmp_path / f"state-{speed}"
        async with rig(state, tasks, settings=settings) as (driver, outbox, _m, fed):
            for i in range(fixes_needed - 1):
                await fed.fix(fix_at(at(1, 1), utc_ms=T0 + i * 1000))
            await wait_until(
                lambda n=fixes_needed: driver.status()["patrol"]["engine"]["fixes"] >= n - 1
            )
            await driver.drain()
            assert await outbox_events(outbox, "checkin") == []
            await fed.fix(fix_at(at(1, 1), utc_ms=T0 + (fixes_needed - 1) * 1000))
            await wait_until(
                lambda: driver.reporter.counts.checkins == 1, what=f"check-in at {speed}"
            )


async def test_a_failing_camera_is_tried_once_per_run_not_once_per_fix(tmp_path: Path) -> None:
    state = tmp_path / "state"
    missing = tmp_path / "no-such-folder"  # the file camera fails at every photo
    async with (
        Camera(camera_cfg(missing)) as cam,
        rig(state, photo_task(), camera=cam) as (driver, outbox, _media, fed),
    ):
        for i in range(4):
            await fed.fix(fix_at(at(1, 1), utc_ms=T0 + i * 1000))
        await wait_until(lambda: early(driver)["failed"] == 1, what="failed early photo")
        for i in range(4, 12):
            await fed.fix(fix_at(at(1, 1), utc_ms=T0 + i * 1000))
        await wait_until(lambda: driver.reporter.counts.checkins == 1, what="check-in")
        await driver.drain()
        # Opening, one early attempt for the whole run, one more at the check-in; no photo.
        assert early(driver)["failed"] == 1 and early(driver)["taken"] == 0
        assert cam.status()["failures"] == 3
        [checkin] = await outbox_events(outbox, "checkin")
        assert checkin["body"]["photos"] == []
