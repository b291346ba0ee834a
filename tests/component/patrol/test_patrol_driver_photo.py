"""Photos: camera -> JPEG with GPS EXIF -> content-addressed file -> event
naming it -> chunks -> media event; files kept until every chunk is acknowledged."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import piexif
import pytest

from agent.config.model import ModeProfile
from agent.errors import DeviceError
from agent.patrol.camera import Camera, exif_bytes, read_gps
from agent.patrol.config import PatrolCameraConfig
from firmware_bridge.types import Fix
from sync.outbox_rows import Row
from tests.conftest import SHARED_DATA
from tests.kits.aio import wait_until
from tests.kits.patrol import (
    DEV,
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

TAG = "04A1B2C3"


def pictures(tmp_path: Path) -> Path:
    """The shared street scenes when present (several chunks each), else generated ones."""
    shared = SHARED_DATA / "images"
    return shared if shared.is_dir() else jpeg_folder(tmp_path / "pics")


def check_exif(path: Path, here: Fix) -> None:
    """Check the stored JPEG's EXIF: the fix's position, altitude, GPS time and accuracy, WGS-84,
    and the picture's own time."""
    gps = read_gps(str(path))  # EXIF keeps 1/1000 arc-second: within 2e-7 degrees (2 cm)
    assert math.isclose(gps["lat"], here.lat or 0, abs_tol=2e-7)
    assert math.isclose(gps["lon"], here.lon or 0, abs_tol=2e-7)
    assert gps["utc_ms"] == here.utc_ms and gps["alt_m"] == pytest.approx(42.5)
    exif = piexif.load(str(path))
    assert exif["GPS"][piexif.GPSIFD.GPSMapDatum] == b"WGS-84"
    assert exif["GPS"][piexif.GPSIFD.GPSHPositioningError] == (350, 100)
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal].startswith(b"20")
    assert exif["Exif"][piexif.ExifIFD.OffsetTimeOriginal] == b"+00:00"


def check_chunk_order(
    rows: list[Row], data: bytes, checkin: dict[str, Any], media_evt: dict[str, Any]
) -> list[int]:
    """Check the outbox order (§4): the check-in, every chunk of `data` in order, then the media
    event naming them; return the rowids of the chunks and the media event, in order."""
    ref = checkin["body"]["photos"][0]
    mid = ref["media_id"]
    topics = [r.topic for r in rows]
    i_checkin = topics.index(f"grid/v1/{DEV}/evt/checkin")
    chunk_rows = [r for r in rows if r.topic.startswith(f"grid/v1/{DEV}/media/{mid}/")]
    n = math.ceil(len(data) / 65536)
    assert n > 1 or not (SHARED_DATA / "images").is_dir()  # street scenes: several chunks
    assert [r.topic.rsplit("/", 1)[1] for r in chunk_rows] == [str(k) for k in range(n)]
    assert b"".join(r.payload for r in chunk_rows) == data
    assert all(r.priority == 4 for r in chunk_rows)
    assert i_checkin < topics.index(chunk_rows[0].topic)
    assert topics.index(chunk_rows[-1].topic) < topics.index(f"grid/v1/{DEV}/evt/media")
    assert media_evt["body"] == {
        "media_id": mid,
        "sha256": ref["sha256"],
        "bytes": len(data),
        "chunks": n,
        "mime": "image/jpeg",
        "ref": {"kind": "checkin", "id": checkin["id"]},
    }
    return [r.rowid for r in chunk_rows] + [r.rowid for r in rows if r.topic.endswith("/media")]


async def test_photo_checkpoint_stores_jpeg_with_exif_and_sends_chunks_after(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    tasks = record([task("t-photo", [cp("kiosk", at(0, 0), tags=(TAG,), photo=True)])])
    here = fix_at(at(5, 5), acc=3.5)
    async with (
        Camera(camera_cfg(pictures(tmp_path), jpeg_quality=95)) as cam,
        rig(state, tasks, camera=cam) as (driver, outbox, media, fed),
    ):
        await fed.fix(here)
        await wait_until(lambda: driver.current_fix()[0] is not None)
        await fed.tag(TAG)
        await wait_until(lambda: fed.feedback == ["ok"], what="check-in")
        await driver.drain()
        rows = sorted(await outbox.fetch((-1, -1), 10_000), key=lambda r: r.rowid)
        checkin = (await outbox_events(outbox, "checkin"))[0]
        media_evt = (await outbox_events(outbox, "media"))[0]

        ref = checkin["body"]["photos"][0]
        assert set(ref) == {"media_id", "sha256", "bytes", "mime"} and ref["mime"] == "image/jpeg"
        path = state / "media" / f"{ref['sha256']}.jpg"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref["sha256"] and len(data) == ref["bytes"]
        check_exif(path, here)
        group = check_chunk_order(rows, data, checkin, media_evt)

        # Kept until every chunk and the media event are acknowledged (deleted from the outbox).
        await outbox.delete(group[:-1])
        assert await media.reap() == 0 and path.exists()
        await outbox.delete(group[-1:])
        await wait_until(lambda: not path.exists(), what="photo reaped by the driver")


async def test_camera_failure_loses_the_photo_never_the_checkin(tmp_path: Path) -> None:
    empty = tmp_path / "no-pictures"
    empty.mkdir()
    tasks = record([task("t", [cp("kiosk", at(0, 0), tags=(TAG,), photo=True)])])
    async with (
        Camera(camera_cfg(empty)) as cam,
        rig(tmp_path / "state", tasks, camera=cam) as (driver, outbox, _media, fed),
    ):
        await fed.tag(TAG)
        await wait_until(lambda: fed.feedback == ["ok"])
        await driver.drain()
        checkins = await outbox_events(outbox, "checkin")
        status = driver.status()["patrol"]
    assert [c["body"]["photos"] for c in checkins] == [[]]
    assert "photo not taken" in status["last_error"] and status["camera"]["failures"] >= 1


async def test_mode_profile_asks_every_checkin_for_a_photo(tmp_path: Path) -> None:
    tasks = record([task("t", [cp("gate", at(0, 0), tags=(TAG,), photo=False)])])
    async with (
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(tmp_path / "state", tasks, camera=cam, profile=ModeProfile(checkin_photo=True)) as (
            driver,
            outbox,
            _media,
            fed,
        ),
    ):
        await fed.tag(TAG)
        await wait_until(lambda: fed.feedback == ["ok"])
        await driver.drain()
        checkin = (await outbox_events(outbox, "checkin"))[0]
        assert len(checkin["body"]["photos"]) == 1
        assert await outbox_events(outbox, "media")  # no fix: EXIF has time but no GPS


def test_exif_without_a_fix_has_time_only() -> None:
    exif = piexif.load(exif_bytes(None, 1_764_000_000_123))
    assert exif["GPS"] == {}
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2025:11:24 16:00:00"
    assert exif["Exif"][piexif.ExifIFD.SubSecTimeOriginal] == b"123"


def test_exif_southern_western_and_below_sea_level() -> None:
    fix = dataclasses.replace(fix_at((-33.8688197, -70.6692655)), alt_m=-12.25)
    gps = read_gps(exif_bytes(fix, 0))  # piexif reads bare EXIF bytes as well as a JPEG
    assert math.isclose(gps["lat"], -33.8688197, abs_tol=2e-7)
    assert math.isclose(gps["lon"], -70.6692655, abs_tol=2e-7)
    assert gps["alt_m"] == -12.25 and gps["utc_ms"] == fix.utc_ms


async def test_video_file_through_opencv_and_a_missing_v4l2_device(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    video = tmp_path / "clip.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 240))
    for i in range(3):
        out.write(np.full((240, 320, 3), 40 * i, dtype=np.uint8))
    out.release()
    fix = fix_at(at(1, 1))
    async with Camera(camera_cfg(video)) as cam:
        photos = [await cam.jpeg(fix, 1_764_000_000_000) for _ in range(5)]  # loops the clip
    assert all(p[:2] == b"\xff\xd8" for p in photos)
    assert math.isclose(read_gps(photos[0])["lat"], fix.lat or 0, abs_tol=2e-7)
    async with Camera(PatrolCameraConfig(source="v4l2:/dev/video-missing")) as cam:
        with pytest.raises(DeviceError):
            await cam.jpeg(None, 0)
        assert cam.status()["failures"] >= 1 and not cam.ok()
