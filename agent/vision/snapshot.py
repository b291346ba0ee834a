"""Snapshot JPEGs for start events: the frame with zones and boxes drawn (blocking)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from agent.errors import CodecError
from agent.vision.geometry import Point
from agent.vision.rules import Marked

_BOX = (0, 0, 255)  # red, BGR
_ZONE = (0, 215, 255)  # amber


def render(
    image: np.ndarray,
    boxes: Sequence[Marked],
    zones: Sequence[tuple[str, Sequence[Point]]] = (),
    *,
    max_side: int = 1280,
    quality: int = 80,
) -> bytes:
    """JPEG of a copy of `image` (BGR) with zone outlines and labelled boxes; never mutates it."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    canvas = (
        cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        if s < 1.0
        else image.copy()
    )
    thick = max(1, round(max(canvas.shape[:2]) / 320))
    for name, polygon in zones:
        pts = np.array([[x * s, y * s] for x, y in polygon], dtype=np.int32)
        cv2.polylines(canvas, [pts], True, _ZONE, thick)
        x0, y0 = int(pts[0][0]), int(pts[0][1])
        cv2.putText(
            canvas,
            name,
            (x0 + 3, max(12, y0 - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick,
            _ZONE,
            thick,
        )
    for mark in boxes:
        x, y, bw, bh = (round(v * s) for v in mark.box)
        cv2.rectangle(canvas, (x, y), (x + bw, y + bh), _BOX, thick)
        cv2.putText(
            canvas,
            f"{mark.label} {mark.score:.2f}",
            (x + 2, max(12, y - 4)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.4 * thick,
            _BOX,
            thick,
        )
    ok, buf = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CodecError("JPEG encoding failed")
    return buf.tobytes()
