"""A camera whose analysis keeps crashing fails alone: the other cameras and the agent run on.

Before, a detector raising something unexpected on every frame made the supervisor give the
loop up and stop the whole gateway (the arm64 check saw it with Debian's OpenCV, which lacked
the cascade files). The fault is injected into one
camera's real HOG detector; the supervisor is the agent's own, with short backoffs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from agent.vision.config import CameraConfig
from agent.vision.detector_choice import build_detector
from agent.vision.detectors import Detector
from agent.vision.gateway import Gateway
from agent.vision.geometry import Box
from agent.vision.tracker import Detection
from tests.kits.aio import wait_until
from tests.kits.vision import (
    LOWER_HALF,
    ListSource,
    MemoryMedia,
    MemorySink,
    background,
    camera,
    no_sleep,
    quick_supervisor,
    with_boxes,
)


class Broken:
    """A real detector whose every call raises: the injected fault."""

    def __init__(self, real: Detector) -> None:
        self.name = real.name

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        raise RuntimeError("injected detector fault")


def cam(cam_id: str) -> CameraConfig:
    return camera(
        id=cam_id,
        source="file:/unused",
        fps=25,
        detector={"kind": "hog"},
        zones=[{"name": "plaza", "polygon": LOWER_HALF, "rules": ["crowd"]}],
        thresholds={"crowd": {"min_people": 1, "min_s": 0}},
    )


def detectors(cfg: CameraConfig) -> Detector:
    real = build_detector(cfg.detector)
    return Broken(real) if cfg.id == "cam-bad" else real


async def test_a_camera_that_keeps_crashing_fails_alone() -> None:
    bg = background()
    frames = [with_boxes(bg, [(40 + 12 * i, 300, 40, 80)], 220) for i in range(20)]
    fatal: list[str] = []
    sup = quick_supervisor(fatal)
    async with (
        sup,
        Gateway(
            [cam("cam-good"), cam("cam-bad")],
            MemorySink(),
            MemoryMedia(),
            sleep=no_sleep,
            source_factory=lambda c: ListSource(frames),  # reopened at its end: never stops
            detector_factory=detectors,
            spawn=sup.spawn,
            spawn_camera=functools.partial(sup.spawn, essential=False),
        ) as gateway,
    ):
        await wait_until(lambda: gateway.status()["cam-bad"]["state"] == "failed", what="failed")
        bad = gateway.status()["cam-bad"]
        assert "injected detector fault" in bad["last_error"]
        seen = gateway.status()["cam-good"]["frames"]
        await wait_until(lambda: gateway.status()["cam-good"]["frames"] > seen + 10, what="runs on")
        assert gateway.status()["cam-good"]["state"] != "failed"
        assert sup.healthy() and fatal == []
        assert any(name.startswith("loop vision:cam-bad:analysis") for name in sup.problems())
