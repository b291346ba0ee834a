"""Whole pipeline on synthetic videos written here and on the real images: expected events."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from agent.vision.gateway import Gateway
from agent.vision.tracker import Detection
from tests.kits.vision import (
    EMPTY_IMAGES,
    LOWER_HALF,
    PEOPLE_IMAGES,
    MemoryMedia,
    MemorySink,
    OneShot,
    background,
    camera,
    image_path,
    no_sleep,
    run_to_end,
    with_boxes,
    write_video,
)

W0 = 1_764_000_000_000  # wall clock of the fake now_ms
FPS = 5
WHOLE = [[0, 0], [640, 0], [640, 480], [0, 480]]


class SquareDetector:
    """Deterministic stand-in detector: every bright square in the frame is a "person"."""

    def detect(self, image, rois):
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        mask = (gray >= 240).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if w * h >= 600:
                out.append(Detection((float(x), float(y), float(w), float(h)), 0.9, "person"))
        return out


async def run_video(tmp_path, frames, cams, *, mode="normal", detector=None):
    """Write frames as an MJPG video, run the gateway over it once; return sink and media."""
    video = write_video(tmp_path / "scene.avi", frames, FPS)
    configs = [camera(source=f"file:{video}", fps=FPS, **c) for c in cams]
    sink, media = MemorySink(), MemoryMedia()
    factories = {c.id: OneShot() for c in configs}
    gateway = Gateway(
        configs,
        sink,
        media,
        mode_profile=mode,
        now_ms=lambda: W0,
        sleep=no_sleep,
        source_factory=lambda cam: factories[cam.id](cam),
        detector_factory=(lambda cam: detector) if detector else None,
    )
    async with gateway:
        for c in configs:
            await run_to_end(gateway, c.id)
    return sink, media


def squares(n, frame_no, y=300):
    """n bright 40x80 "people", 115 px apart, swaying 2 px a frame (so there is motion)."""
    sway = 40 - abs(40 - (2 * frame_no) % 80)
    return [(20 + 115 * i + sway, y, 40, 80) for i in range(n)]


def crowd_frames(script):
    """script: [(seconds, people)] -> frames at FPS."""
    bg = background()
    frames = []
    for seconds, n in script:
        for _ in range(int(seconds * FPS)):
            frames.append(with_boxes(bg, squares(n, len(frames))))
    return frames


def assert_one_lifecycle(bodies):
    """Every track goes start, update..., end, in that order, each body fully formed."""
    tracks: dict[str, list[str]] = {}
    for b in bodies:
        assert set(b) == {
            "camera_id",
            "origin",
            "rule",
            "zone",
            "state",
            "track",
            "count",
            "score",
            "boxes",
            "started_ms",
            "ended_ms",
            "photos",
        }
        tracks.setdefault(b["track"], []).append(b["state"])
        assert (b["ended_ms"] is None) == (b["state"] != "end")
        assert bool(b["photos"]) == (b["state"] == "start")
    for states in tracks.values():
        assert states[0] == "start" and states[-1] == "end"
        assert set(states[1:-1]) <= {"update"}
    return tracks


CROWD_CAM = {
    "zones": [{"name": "plaza", "polygon": LOWER_HALF, "rules": ["crowd"]}],
    "tamper": False,
    "thresholds": {
        "crowd": {"min_people": 3, "min_s": 2},
        "events": {"update_min_s": 2, "end_after_s": 1, "cooldown_s": 60},
    },
}


@pytest.mark.slow
async def test_crowd_lifecycle_start_update_end_with_snapshot(tmp_path):
    frames = crowd_frames([(1, 0), (4, 1), (7, 4), (5, 5), (7, 0)])
    sink, media = await run_video(
        tmp_path, frames, [{"id": "cam-a", **CROWD_CAM}], detector=SquareDetector()
    )
    bodies = sink.bodies()
    assert [(b["state"], b["count"]) for b in bodies] == [("start", 4), ("update", 5), ("end", 5)]
    assert len(assert_one_lifecycle(bodies)) == 1
    start, update, end = bodies
    assert start["origin"] == "edge" and start["zone"] == "plaza" and start["camera_id"] == "cam-a"
    assert [box[5] for box in start["boxes"]] == ["person"] * 4
    assert all(len(box) == 6 and all(isinstance(v, int) for v in box[:4]) for box in start["boxes"])
    # The crowd formed at 5 s into the recording; the event ended after the last people left.
    assert W0 + 4800 <= start["started_ms"] <= W0 + 5600
    assert end["ended_ms"] >= W0 + 16000
    assert start["started_ms"] == update["started_ms"] == end["started_ms"]
    # The photo was stored, named by the start event, and handed over after it.
    (ref,) = start["photos"]
    assert set(ref) == {"media_id", "sha256", "bytes", "mime"} and ref["mime"] == "image/jpeg"
    jpeg = media.photos[ref["media_id"]]
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) == ref["bytes"]
    assert media.sent == [(ref["media_id"], "evt-1")]
    assert {p for _, _, p in sink.events} == {2}


@pytest.mark.parametrize("cooldown, starts", [(60, 1), (2, 2)])
async def test_cooldown_holds_back_a_second_start(tmp_path, cooldown, starts):
    frames = crowd_frames([(1, 0), (4, 4), (3, 0), (4, 4), (3, 0)])
    cam = {**CROWD_CAM, "id": "cam-a"}
    cam["thresholds"] = {
        **cam["thresholds"],
        "events": {"update_min_s": 2, "end_after_s": 1, "cooldown_s": cooldown},
    }
    sink, _ = await run_video(tmp_path, frames, [cam], detector=SquareDetector())
    bodies = sink.bodies()
    tracks = assert_one_lifecycle(bodies)
    assert [b["state"] for b in bodies].count("start") == starts == len(tracks)


async def test_mode_profile_sets_priority_per_camera(tmp_path):
    frames = crowd_frames([(1, 0), (5, 4), (2, 0)])
    urgent = {**CROWD_CAM, "id": "cam-b", "modes": {"emergency": {"crowd": {"priority": 0}}}}
    sink, _ = await run_video(
        tmp_path,
        frames,
        [{**CROWD_CAM, "id": "cam-a"}, urgent],
        mode="emergency",
        detector=SquareDetector(),
    )
    prio = {(b["camera_id"], b["state"]): p for _, b, p in sink.events}
    assert prio == {
        ("cam-a", "start"): 2,
        ("cam-a", "end"): 2,
        ("cam-b", "start"): 0,
        ("cam-b", "end"): 0,
    }


async def test_moving_blobs_make_motion_events_but_no_people(tmp_path):
    bg = background()
    frames = [bg.copy() for _ in range(5)]
    for i in range(30):  # two grey boxes crossing the lower half for 6 s
        boxes = [(10 + 18 * i, 280, 70, 50), (600 - 15 * i, 380, 50, 40)]
        frames.append(with_boxes(bg, boxes, 128))
    frames += [bg.copy() for _ in range(15)]
    cam = {
        "id": "cam-m",
        "zones": [
            {
                "name": "plaza",
                "polygon": LOWER_HALF,
                "rules": ["motion", "crowd", "water_zone", "loitering"],
            }
        ],
        "thresholds": {
            "crowd": {"min_people": 1, "min_s": 0},
            "motion": {"min_fraction": 0.01, "min_s": 1},
            "events": {"end_after_s": 1},
        },
    }
    sink, _ = await run_video(tmp_path, frames, [cam])
    bodies = sink.bodies()
    assert {b["rule"] for b in bodies} == {"motion"}
    assert [b["state"] for b in bodies] == ["start", "end"]
    assert_one_lifecycle(bodies)


@pytest.mark.slow
async def test_blob_that_stops_is_parked_and_does_not_fade(tmp_path):
    bg = background()
    frames = [bg.copy() for _ in range(5)]
    frames += [with_boxes(bg, [(40 + 30 * i, 300, 90, 60)], 90) for i in range(10)]
    stop_box = (40 + 30 * 9, 300, 90, 60)
    frames += [with_boxes(bg, [stop_box], 90) for _ in range(100)]  # 20 s, background_s is 3
    leave = len(frames)
    frames += [bg.copy() for _ in range(20)]
    cam = {
        "id": "cam-p",
        "zones": [{"name": "kerb", "polygon": LOWER_HALF, "rules": ["parking"]}],
        "motion": {"background_s": 3},
        "static": {"settle_s": 2},
        "thresholds": {"parking": {"min_s": 6}, "events": {"end_after_s": 1}},
    }
    sink, media = await run_video(tmp_path, frames, [cam])
    bodies = sink.bodies()
    assert [(b["rule"], b["state"]) for b in bodies] == [("parking", "start"), ("parking", "end")]
    start, end = bodies
    (x, y, w, h, _score, label) = start["boxes"][0]
    assert label == "object"
    assert abs(x - stop_box[0]) <= 8 and abs(y - stop_box[1]) <= 8
    assert abs(w - stop_box[2]) <= 12 and abs(h - stop_box[3]) <= 12
    # It stopped 2.8 s into the recording (frame 14); the event reports that as its start...
    assert W0 + 2600 <= start["started_ms"] <= W0 + 3200
    # ...and lasts until the object actually left, long after MOG2 took it into its background.
    assert end["ended_ms"] >= W0 + (leave - 1) * 200
    assert len(media.photos) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["covered", "blurred", "moved"])
async def test_tampered_lens_starts_and_ends_a_tamper_event(tmp_path, kind):
    bg = background()
    if kind == "covered":
        rng = np.random.default_rng(3)
        bad = rng.integers(4, 12, size=bg.shape, dtype=np.uint8)
    elif kind == "blurred":
        bad = cv2.GaussianBlur(bg, (0, 0), 12)
    else:
        bad = np.roll(background(seed=7), 200, axis=1)
    frames = [bg.copy() for _ in range(15)] + [bad.copy() for _ in range(30)]
    frames += [bg.copy() for _ in range(20)]
    cam = {
        "id": "cam-t",
        "zones": [{"name": "shore", "polygon": LOWER_HALF, "rules": ["water_zone"]}],
        "motion": {"background_s": 2},
        "thresholds": {"tamper": {"min_s": 2}, "events": {"end_after_s": 1}},
    }
    sink, media = await run_video(tmp_path, frames, [cam])
    bodies = sink.bodies()
    assert [(b["rule"], b["state"], b["zone"]) for b in bodies] == [
        ("tamper", "start", None),
        ("tamper", "end", None),
    ]
    start, end = bodies
    assert W0 + 3000 <= start["started_ms"] <= W0 + 3400
    assert W0 + 8600 <= end["ended_ms"] <= W0 + 9400
    assert len(media.photos) == 1


def _folder_of(tmp_path, name, copies=12):
    src = image_path(name)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(copies):
        os.symlink(src, folder / f"{i:03d}.jpg")  # the real image, not a copy
    h, w = cv2.imread(str(src)).shape[:2]
    return folder, [[0, 0], [w, 0], [w, h], [0, h]]


async def _run_folder(tmp_path, name):
    folder, whole = _folder_of(tmp_path, name)
    cam = camera(
        id="cam-img",
        source=f"file:{folder}",
        fps=FPS,
        zones=[{"name": "all", "polygon": whole, "rules": ["water_zone", "crowd", "loitering"]}],
        thresholds={"crowd": {"min_people": 2, "min_s": 0}, "loitering": {"min_s": 1}},
    )
    sink, media = MemorySink(), MemoryMedia()
    async with Gateway(
        [cam], sink, media, now_ms=lambda: W0, sleep=no_sleep, source_factory=OneShot()
    ) as gateway:
        st = await run_to_end(gateway, "cam-img")
    return sink, media, st


@pytest.mark.parametrize("name", PEOPLE_IMAGES)
async def test_real_people_images_raise_person_events(tmp_path, name):
    sink, media, st = await _run_folder(tmp_path, name)
    water = sink.bodies("water_zone")
    assert [b["state"] for b in water] == ["start", "end"]  # end: the gateway stopped
    assert water[0]["count"] >= 1
    assert {box[5] for box in water[0]["boxes"]} == {"person"}
    assert len(water[0]["photos"]) == 1 and media.sent
    assert "loitering" in {b["rule"] for b in sink.bodies()}  # 12 frames = 2.4 s > 1 s
    assert_one_lifecycle(sink.bodies())
    assert st["detector_runs"] >= 2  # census, then re-checks of the still people


@pytest.mark.parametrize("name", EMPTY_IMAGES)
async def test_real_scenes_without_people_raise_nothing(tmp_path, name):
    sink, _, st = await _run_folder(tmp_path, name)
    assert sink.events == []
    assert st["frames"] == 12 and st["detector_runs"] == 1  # only the census after opening
