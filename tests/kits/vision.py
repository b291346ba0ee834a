"""Helpers for the vision tests: memory sinks, drawn scenes, videos, a gateway agent (no tests)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.camera.sources import FrameSource, open_source
from agent.config.model import Config
from agent.demo.broker import Broker
from agent.errors import DeviceError
from agent.runtime.supervisor import Supervisor
from agent.vision.config import CameraConfig
from firmware_bridge.aio import Backoff
from sync.messages import DEFAULT_PRIORITY, Stored
from tests.kits.agents import OpsKey, make_config

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
IMAGES = DATA / "images"
PEOPLE_IMAGES = ("yolov5_bus.jpg", "darknet_person.jpg")
EMPTY_IMAGES = ("pytorchyolov3_street.jpg", "pytorchyolov3_room.jpg", "darknet_horses.jpg")
MAX_PAYLOAD = 131072
LOWER_HALF = [[0, 240], [640, 240], [640, 480], [0, 480]]


def image_path(name: str) -> Path:
    """A real test image, or skip the test when the shared data folder is absent."""
    path = IMAGES / name
    if not path.is_file():
        pytest.skip(f"shared test data not found at {path} (the ../shared/data checkout)")
    return path


class MemorySink:
    """EventSink keeping events in a list; checks the body is JSON and fits a payload."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], int]] = []

    async def emit(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        group: str | None = None,
        journal: bool = False,
    ) -> Stored:
        payload = json.dumps(body).encode("utf-8")
        assert len(payload) < MAX_PAYLOAD
        prio = DEFAULT_PRIORITY[kind] if priority is None else priority
        self.events.append((kind, json.loads(payload), prio))
        n = len(self.events)
        return Stored(f"evt-{n}", n, f"grid/v1/gw-1/evt/{kind}", payload, prio)

    def bodies(self, rule: str | None = None) -> list[dict[str, Any]]:
        """Detection bodies in emission order, optionally of one rule."""
        return [b for k, b, _ in self.events if k == "detection" and rule in (None, b["rule"])]


class MemoryMedia:
    """MediaSink keeping photos; records which event named each photo."""

    def __init__(self) -> None:
        self.photos: dict[str, bytes] = {}
        self.sent: list[tuple[str, str]] = []

    async def store(self, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        media_id = str(uuid.uuid4())
        self.photos[media_id] = data
        return {
            "media_id": media_id,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "mime": mime,
        }

    async def send(self, ref: Mapping[str, Any], naming: Stored) -> None:
        self.sent.append((str(ref["media_id"]), naming.id))


async def no_sleep(seconds: float) -> None:
    """Injected sleep: frame pacing does not wait; a reopen backoff waits a token 20 ms."""
    await asyncio.sleep(0.02 if seconds >= 0.5 else 0)


def quick_supervisor(fatal: list[str]) -> Supervisor:
    """The agent's supervisor with short backoffs and two restarts; a fatal loop's name goes to
    `fatal` (the agent would stop there)."""
    return Supervisor(
        on_fatal=lambda name, exc: fatal.append(name),
        backoff=Backoff(0.01, 0.02),
        max_restarts=2,
        sleep=no_sleep,
    )


def background(width: int = 640, height: int = 480, seed: int = 1) -> np.ndarray:
    """A textured, sharp, mid-grey scene (so sharpness and contrast are meaningful)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, size=(height // 16, width // 16, 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    for x in range(0, width, 40):
        cv2.line(img, (x, 0), (x, height), (30, 30, 30), 1)
    for y in range(0, height, 40):
        cv2.line(img, (0, y), (width, y), (220, 220, 220), 1)
    return img


def with_boxes(
    base: np.ndarray, boxes: Iterable[tuple[int, int, int, int]], colour: int = 255
) -> np.ndarray:
    """A copy of base with filled rectangles (x, y, w, h)."""
    img = base.copy()
    for x, y, w, h in boxes:
        cv2.rectangle(img, (x, y), (x + w, y + h), (colour, colour, colour), -1)
    return img


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float = 5.0) -> Path:
    """Write an MJPG .avi (works with headless OpenCV)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


class ListSource:
    """A recording held in memory."""

    def __init__(self, frames: Sequence[np.ndarray], live: bool = False) -> None:
        self.live = live
        self._frames = list(frames)
        self._i = 0
        self.closed = False

    def open(self) -> None:
        self._i = 0

    def read(self) -> np.ndarray | None:
        if self._i >= len(self._frames):
            return None
        self._i += 1
        return self._frames[self._i - 1]

    def grab(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class OneShot:
    """Source factory: the real source once, then "gone" so a recording is not replayed."""

    def __init__(
        self,
        make: Callable[[CameraConfig], FrameSource] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self._make = make or (lambda cam: open_source(cam, base_dir))
        self.calls = 0

    def __call__(self, cam: CameraConfig) -> FrameSource:
        self.calls += 1
        if self.calls > 1:
            raise DeviceError("recording finished")
        return self._make(cam)


async def run_to_end(gateway: Any, camera_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Wait until a one-shot recording has been fully analysed; return the camera status."""
    async with asyncio.timeout(timeout_s):
        while True:
            st = gateway.status()[camera_id]
            if st["state"] == "failed":
                raise AssertionError(f"camera failed: {st}")
            if st["reopenings"] >= 1 and st["frames"] >= st["captured"] > 0:
                return dict(st)
            await asyncio.sleep(0.01)


def camera(**fields: Any) -> CameraConfig:
    """A CameraConfig from keyword fields, as a TOML table would give them."""
    return CameraConfig.model_validate(fields)


def gateway_config(tmp_path: Path, broker: Broker, key: OpsKey, video: Path) -> Config:
    """A camera gateway with one file camera on `video` watching its lower half for motion."""
    camera = {
        "id": "cam-plaza-1",
        "source": f"file:{video}",
        "fps": 5,
        "zones": [{"name": "plaza", "polygon": LOWER_HALF, "rules": ["motion"]}],
        "thresholds": {"motion": {"min_fraction": 0.01, "min_s": 1}, "events": {"end_after_s": 1}},
    }
    return make_config(
        tmp_path / "state", broker.port, key, device={"role": "camera_gateway"}, cameras=[camera]
    )
