"""Sources and the capture loop: reopen with jittered capped backoff, stalls, failures, drops."""

from __future__ import annotations

import asyncio
import threading

import cv2
import numpy as np
import pytest

from agent.camera.sources import ImageFolderSource, OpenCvSource, Picamera2Source, open_source
from agent.errors import ConfigError, DeviceError
from agent.vision.gateway import Gateway
from agent.vision.tracker import Detection
from tests.kits.vision import (
    ListSource,
    MemoryMedia,
    MemorySink,
    background,
    camera,
    no_sleep,
    write_video,
)


async def wait_for(predicate, timeout_s=20.0):
    """Poll the gateway's status until predicate holds (a status is not awaitable)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def test_open_source_picks_the_backend(tmp_path):
    (tmp_path / "frames").mkdir()
    assert isinstance(open_source(camera(id="c", source="picamera2:1")), Picamera2Source)
    v4l2 = open_source(camera(id="c", source="v4l2:0"))
    rtsp = open_source(camera(id="c", source="rtsp://10.1.1.5/stream1"))
    assert isinstance(v4l2, OpenCvSource) and v4l2.live
    assert isinstance(rtsp, OpenCvSource) and rtsp.live
    folder = open_source(camera(id="c", source="file:frames"), tmp_path)
    assert isinstance(folder, ImageFolderSource) and not folder.live
    video = open_source(camera(id="c", source="file:videos/a.avi"), tmp_path)
    assert isinstance(video, OpenCvSource) and not video.live


def test_video_file_and_image_folder_sources_read_frames(tmp_path):
    frames = [background(seed=i) for i in range(4)]
    video = OpenCvSource(str(write_video(tmp_path / "v.avi", frames)), live=False)
    video.open()
    read = []
    while (f := video.read()) is not None:
        read.append(f)
    video.close()
    assert len(read) == 4 and read[0].shape == (480, 640, 3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, f in enumerate(frames[:2]):
        cv2.imwrite(str(folder / f"{i}.png"), f)
    (folder / "2.png").write_bytes(b"broken")
    (folder / "notes.txt").write_text("ignored")
    src = ImageFolderSource(folder)
    src.open()
    assert np.array_equal(src.read(), frames[0]) and np.array_equal(src.read(), frames[1])
    assert src.read() is None  # the broken file is skipped, then the folder ends


def test_missing_devices_raise_device_error(tmp_path):
    with pytest.raises(DeviceError):
        OpenCvSource(str(tmp_path / "none.avi"), live=False).open()
    with pytest.raises(DeviceError):
        ImageFolderSource(tmp_path / "nowhere").open()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DeviceError):
        ImageFolderSource(empty).open()


class Script:
    """Source factory: fail `fail` times, then a short recording, then fail forever."""

    def __init__(self, fail=2, frames=5):
        self.calls = 0
        self.fail = fail
        self.frames = [background() for _ in range(frames)]

    def __call__(self, cam):
        self.calls += 1
        if self.calls <= self.fail or self.calls > self.fail + 1:
            raise DeviceError(f"camera unplugged ({self.calls})")
        return ListSource(self.frames)


async def test_reopen_with_jittered_capped_backoff_and_status():
    delays = []

    async def sleep(s):
        if s >= 0.25:
            delays.append(s)
        await asyncio.sleep(0.005 if s >= 0.25 else 0)

    cam = camera(id="cam-r", source="v4l2:0", fps=100, backoff={"initial_s": 1, "max_s": 4})
    gateway = Gateway(
        [cam], MemorySink(), MemoryMedia(), sleep=sleep, rng=lambda: 1.0, source_factory=Script()
    )
    async with gateway:
        await wait_for(lambda: len(delays) >= 6)
        st = gateway.status()["cam-r"]
    # Two failures, a recording (which resets the backoff), its end, then failures again.
    assert delays[:6] == [1, 2, 1, 2, 4, 4]
    assert st["state"] == "reopening" and st["frames"] == 5
    assert st["reopenings"] >= 6 and "unplugged" in st["last_error"]
    assert gateway.status()["cam-r"]["state"] == "stopped"


async def test_backoff_jitter_stays_within_half_and_full_delay():
    delays = []

    async def sleep(s):
        if s >= 0.25:
            delays.append(s)
        await asyncio.sleep(0)

    cam = camera(id="cam-j", source="v4l2:0", backoff={"initial_s": 1, "max_s": 8})
    values = iter([0.0, 0.5, 0.999] * 10)
    gateway = Gateway(
        [cam],
        MemorySink(),
        MemoryMedia(),
        sleep=sleep,
        rng=lambda: next(values),
        source_factory=Script(fail=100),
    )
    async with gateway:
        await wait_for(lambda: len(delays) >= 5)
    assert delays[:5] == pytest.approx([0.5, 1.5, 3.998, 4.0, 6.0], abs=0.01)


class StuckSource(ListSource):
    """A stream whose read never returns until released."""

    def __init__(self):
        super().__init__([])
        self.release = threading.Event()

    def read(self):
        self.release.wait(10)
        return None


async def test_a_stalled_read_is_abandoned_and_reopened():
    stuck = StuckSource()
    calls = []

    def factory(cam):
        calls.append(cam.id)
        if len(calls) == 1:
            return stuck
        raise DeviceError("still gone")

    cam = camera(id="cam-s", source="rtsp://cam/s", stall_s=0.2)
    gateway = Gateway([cam], MemorySink(), MemoryMedia(), sleep=no_sleep, source_factory=factory)
    try:
        async with gateway:
            await wait_for(lambda: len(calls) >= 2)
            st = gateway.status()["cam-s"]
    finally:
        stuck.release.set()
    assert st["state"] == "reopening" and st["reopenings"] >= 1
    assert gateway.status()["cam-s"]["state"] == "stopped"
    await wait_for(lambda: stuck.closed)  # closed once the stuck read returned


async def test_a_broken_camera_fails_alone(tmp_path):
    def factory(cam):
        if cam.id == "cam-bad":
            raise ConfigError([("source", "picamera2 is not installed on this system")])
        return ListSource([background()] * 3)

    bad = camera(id="cam-bad", source="picamera2")
    onnx = camera(
        id="cam-onnx",
        source="v4l2:1",
        zones=[{"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]], "rules": ["crowd"]}],
        detector={"kind": "onnx", "model": "nope.onnx", "classes": {"0": "person"}},
    )
    good = camera(id="cam-good", source="v4l2:0", fps=100)
    gateway = Gateway(
        [bad, onnx, good],
        MemorySink(),
        MemoryMedia(),
        sleep=no_sleep,
        source_factory=factory,
        base_dir=tmp_path,
    )
    async with gateway:
        await wait_for(lambda: gateway.status()["cam-good"]["frames"] >= 3)
        await wait_for(lambda: gateway.status()["cam-onnx"]["state"] == "failed")
        st = gateway.status()
    assert st["cam-bad"]["state"] == "failed" and "picamera2" in st["cam-bad"]["last_error"]
    assert "nope.onnx" in st["cam-onnx"]["last_error"]
    assert st["cam-good"]["frames"] >= 3


class EndlessLive(ListSource):
    def __init__(self):
        super().__init__([], live=True)
        self.frame = background()

    def read(self):
        return self.frame


class GatedDetector:
    """Blocks the analysis until the test opens the gate."""

    def __init__(self):
        self.gate = threading.Event()

    def detect(self, image, rois):
        self.gate.wait(10)
        return [Detection((10.0, 10.0, 40.0, 90.0), 0.9, "person")]


async def test_live_frames_are_dropped_oldest_first_when_analysis_lags():
    detector = GatedDetector()
    cam = camera(
        id="cam-l",
        source="rtsp://cam/l",
        fps=120,
        queue_size=2,
        zones=[{"name": "z", "polygon": [[0, 0], [640, 0], [640, 480]], "rules": ["crowd"]}],
    )
    gateway = Gateway(
        [cam],
        MemorySink(),
        MemoryMedia(),
        source_factory=lambda c: EndlessLive(),
        detector_factory=lambda c: detector,
    )
    try:
        async with gateway:
            await wait_for(lambda: gateway.status()["cam-l"]["captured"] >= 8)
            blocked = gateway.status()["cam-l"]
            detector.gate.set()
            await wait_for(lambda: gateway.status()["cam-l"]["frames"] >= 2)
    finally:
        detector.gate.set()
    # While one frame was being analysed, the queue kept only the newest two.
    assert blocked["frames"] == 0
    assert blocked["dropped"] >= blocked["captured"] - 3
