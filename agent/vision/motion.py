"""Cheap motion detection: MOG2 background subtraction on a small grey copy of the frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agent.vision.config import MotionConfig
from agent.vision.geometry import Box


@dataclass(frozen=True, slots=True)
class MotionResult:
    """Foreground of one frame: blobs in captured pixels, fraction moving, the small mask."""

    blobs: tuple[Box, ...]
    fraction: float
    mask: np.ndarray
    gray: np.ndarray
    scale: float
    colour: np.ndarray  # the same small image in colour (blurred alike), for the static watch


class MotionDetector:
    """Background subtraction; not thread-safe, one per camera."""

    def __init__(self, cfg: MotionConfig) -> None:
        self._cfg = cfg
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._mog: cv2.BackgroundSubtractorMOG2 | None = None
        self._last_t: float | None = None
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        """Forget the background (after a reopen the view may differ)."""
        self._mog = None
        self._last_t = None

    def small_gray(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The grey analysis image and its scale from captured pixels."""
        gray, _colour, scale = self._small(image)
        return gray, scale

    def _small(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        h, w = image.shape[:2]
        scale = min(1.0, self._cfg.width / w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale < 1 else image
        colour = cv2.GaussianBlur(small, (3, 3), 0)
        gray = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY) if colour.ndim == 3 else colour
        return gray, colour, scale

    def apply(self, image: np.ndarray, t: float) -> MotionResult:
        """Foreground blobs of this frame; the first frame after a reset reports no motion."""
        gray, colour, scale = self._small(image)
        size = (gray.shape[1], gray.shape[0])
        if self._mog is None or self._size != size:
            self._mog = cv2.createBackgroundSubtractorMOG2(
                history=500, varThreshold=self._cfg.var_threshold, detectShadows=False
            )
            self._size = size
            # The first frame only seeds the model: MOG2 calls all of it foreground.
            self._mog.apply(gray, learningRate=1.0)
            self._last_t = t
            return MotionResult((), 0.0, np.zeros_like(gray), gray, scale, colour)
        dt = max(1e-3, t - (self._last_t if self._last_t is not None else t))
        self._last_t = t
        # MOG2 takes a steady new value into the background once its weight passes
        # 1 - backgroundRatio, i.e. after about (1 - ratio) / rate frames: choose the rate so
        # that this happens after background_s seconds, whatever the frame rate.
        rate = min(1.0, (1.0 - self._mog.getBackgroundRatio()) * dt / self._cfg.background_s)
        mask = self._mog.apply(gray, learningRate=rate)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel)
        fraction = float(cv2.countNonZero(mask)) / mask.size
        blobs: tuple[Box, ...] = ()
        if fraction > 0:
            min_px = self._cfg.min_area * mask.size
            contours, _ = cv2.findContours(
                cv2.dilate(mask, self._kernel, iterations=2),
                cv2.RETR_EXTERNAL,
                cv2.CHAIN_APPROX_SIMPLE,
            )
            inv = 1.0 / scale
            found = []
            for c in contours:
                if cv2.contourArea(c) < min_px:
                    continue
                x, y, w, h = cv2.boundingRect(c)
                found.append((x * inv, y * inv, w * inv, h * inv))
            blobs = tuple(found)
        return MotionResult(blobs, fraction, mask, gray, scale, colour)
