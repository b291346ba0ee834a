"""The gateway's demo clip, drawn with OpenCV at start: people gather, one goes to the water.

Figures are drawn so that OpenCV's stock HOG people detector finds them (head, torso, arms,
legs, at 150+ px tall); they sway a little so the motion gate keeps the detector running.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

W, H, FPS = 640, 480, 5
WATER_X = 470  # the lake: everything right of this column
FRAMES = 90  # 18 s at 5 fps; the gateway replays the file when it ends
PLAZA = [[0, 200], [WATER_X - 1, 200], [WATER_X - 1, 479], [0, 479]]
LAKE = [[WATER_X, 200], [639, 200], [639, 479], [WATER_X, 479]]


def _person(img: np.ndarray, x: float, feet_y: float, h: float, shade: int) -> None:
    s = h / 8.0
    col = (shade, shade, shade + 20)
    legs = (50, 40, 30)

    def p(dx: float, dy: float) -> tuple[int, int]:
        return int(x + dx * s), int(feet_y - dy * s)

    cv2.ellipse(img, p(0, 7.3), (int(0.55 * s), int(0.7 * s)), 0, 0, 360, (150, 170, 200), -1)
    cv2.ellipse(img, p(0, 7.6), (int(0.6 * s), int(0.45 * s)), 0, 180, 360, (20, 20, 20), -1)
    cv2.rectangle(img, p(-1.1, 6.5), p(1.1, 3.6), col, -1)
    arm = max(2, int(0.5 * s))
    cv2.line(img, p(-1.1, 6.3), p(-1.5, 3.7), col, arm)
    cv2.line(img, p(1.1, 6.3), p(1.5, 3.7), col, arm)
    leg = max(2, int(0.6 * s))
    cv2.line(img, p(-0.5, 3.7), p(-0.7, 0), legs, leg)
    cv2.line(img, p(0.5, 3.7), p(0.7, 0), legs, leg)


def _scene(rng: np.random.Generator) -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    img[:] = (170, 175, 165)  # paving
    img[:, WATER_X:] = (150, 110, 60)  # the lake (BGR)
    for y in range(210, H, 24):
        cv2.line(img, (WATER_X + 5, y), (W - 5, y + 3), (175, 135, 85), 2)
    noise = rng.integers(-10, 10, img.shape)
    return np.asarray((img.astype(np.int16) + noise).clip(0, 255), np.uint8)


def _people(i: int) -> list[tuple[float, float, float]]:
    """(x, feet_y, height) of everyone in frame i."""
    sway = 3.0 * np.sin(i / 2.0)
    out = [(90 + sway, 420.0, 160.0), (200 - sway, 430.0, 165.0)]
    arrivals = [(6, 300.0), (12, 380.0), (18, 140.0)]  # frame at which each joins, and where
    for start, x in arrivals:
        if i >= start:
            out.append((x + sway, 440.0 - 5 * len(out), 160.0 + 3 * len(out)))
    if i >= 30:  # one walks off to the water and stays there
        x = min(560.0, 260.0 + (i - 30) * 10.0)
        out.append((x + sway, 410.0, 158.0))
    return out


def write_clip(path: Path) -> Path:
    """Write the clip as MJPG .avi (headless OpenCV can); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    base = _scene(rng)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    try:
        for i in range(FRAMES):
            frame = base.copy()
            for x, feet, h in _people(i):
                _person(frame, x, feet, h, 40 + (int(x) % 5) * 10)
            writer.write(cv2.GaussianBlur(frame, (3, 3), 0))
    finally:
        writer.release()
    return path


def camera_section(clip: Path) -> dict[str, object]:
    """The gateway's [[cameras]] entry for the clip: crowd on the plaza, water_zone on the lake."""
    return {
        "id": "cam-lake-1",
        "source": f"file:{clip}",
        "fps": FPS,
        # The figures are drawings made for HOG: the default person model (rightly) does not
        # take a drawing for a person. HOG alone is also the cheapest, so the crowd forms in
        # the demo's seconds even on a loaded machine.
        "detector": {"kind": "hog"},
        "zones": [
            {"name": "plaza", "polygon": PLAZA, "rules": ["crowd"]},
            {"name": "lake", "polygon": LAKE, "rules": ["water_zone"]},
        ],
        "thresholds": {
            "crowd": {"min_people": 4, "min_s": 2},
            "water_zone": {"min_s": 1},
            "events": {"end_after_s": 2, "cooldown_s": 5, "update_min_s": 5},
        },
    }
