"""Cameras: open each configured source, grab frames, report size and frame rate."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agent.doctor.finding import Finding

GRAB_S = 3.0
MAX_FRAMES = 30


@dataclass(frozen=True, slots=True)
class CamFacts:
    """What a camera probe saw."""

    error: str | None = None
    frames: int = 0
    width: int = 0
    height: int = 0
    fps: float = 0.0


def camera_verdict(check: str, source: str, f: CamFacts) -> Finding:
    """A frame: pass with size and rate; none: fail."""
    params = {"source": source, "why": f.error, "w": f.width, "h": f.height, "fps": f.fps}
    if f.error is not None:
        return Finding(check, "fail", "camera_open", params)
    if f.frames == 0:
        return Finding(check, "fail", "camera_no_frame", params)
    return Finding(check, "pass", "camera_ok", params)


def probe_camera(cam: Any, grab_s: float = GRAB_S) -> CamFacts:
    """Open `cam` (a CameraConfig) and read frames for up to `grab_s` (blocking: a thread)."""
    try:
        from agent.camera.sources import open_source  # OpenCV: only when a camera is checked
    except ImportError as exc:
        return CamFacts(error=f"vision libraries missing: {exc}")
    from agent.errors import EXPECTED_ERRORS

    src = open_source(cam, stall_s=grab_s)
    frames = 0
    size = (0, 0)
    try:
        src.open()
        start = time.monotonic()
        first = last = start
        while frames < MAX_FRAMES and time.monotonic() - start < grab_s:
            frame = src.read()
            if frame is None:
                break
            if frames == 0:
                first = time.monotonic()
            last = time.monotonic()
            frames += 1
            size = (int(frame.shape[1]), int(frame.shape[0]))
    except EXPECTED_ERRORS as exc:
        return CamFacts(error=str(exc), frames=frames)
    finally:
        src.close()
    fps = (frames - 1) / (last - first) if frames > 1 and last > first else 0.0
    return CamFacts(frames=frames, width=size[0], height=size[1], fps=round(fps, 1))


def cameras_of(cfg: Any) -> list[Any]:
    """Every camera a config uses: a gateway's [[cameras]], a patrol device's [camera]."""
    cams = list(cfg.cameras)
    if cfg.camera is not None:
        from agent.vision.config import CameraConfig

        c = cfg.camera
        cams.append(CameraConfig(id="camera", source=c.source, width=c.width, height=c.height))
    return cams
