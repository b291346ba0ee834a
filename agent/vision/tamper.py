"""Tamper measures: brightness, contrast, sharpness and change from a learnt reference view."""

from __future__ import annotations

import cv2
import numpy as np

from agent.vision.rules import TamperMetrics, TamperParams, tamper_reasons


def _normalised(gray: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    mean, std = cv2.meanStdDev(gray)
    m, s = float(mean[0][0]), float(std[0][0])
    # Normalising by mean and contrast keeps a cloud or street lights from looking like a move.
    z = (gray.astype(np.float32) - m) / max(s, 1.0)
    lap = cv2.Laplacian(gray, cv2.CV_16S, ksize=3)
    _, lstd = cv2.meanStdDev(lap)
    return z, m, s, float(lstd[0][0]) ** 2


class TamperMeter:
    """Learns the normal view while no tamper sign shows; one per camera, not thread-safe."""

    def __init__(self, reference_s: float) -> None:
        self._reference_s = reference_s
        self._ref: np.ndarray | None = None
        self._sharp_ref: float | None = None
        self._last_t: float | None = None
        self._signs_since: float | None = None

    def reset(self) -> None:
        """Forget the reference (the source was reopened)."""
        self._ref = None
        self._sharp_ref = None
        self._last_t = None
        self._signs_since = None

    def measure(self, gray: np.ndarray, t: float, params: TamperParams) -> TamperMetrics:
        """Metrics of this small grey frame; the references learn only from untampered views."""
        z, mean, std, sharp = _normalised(gray)
        if self._ref is None or self._ref.shape != z.shape:
            self._ref = z
            self._sharp_ref = sharp
            self._last_t = t
            return TamperMetrics(mean, std, sharp, None, None)
        # z is normalised and the learnt view nearly so (an average of normalised views): their
        # mean product over the view's spread is the correlation coefficient.
        corr = float(np.mean(z * self._ref)) / max(float(self._ref.std()), 1e-6)
        metrics = TamperMetrics(mean, std, sharp, self._sharp_ref, min(1.0, max(0.0, 1.0 - corr)))
        dt = max(0.0, t - (self._last_t if self._last_t is not None else t))
        self._last_t = t
        signs = tamper_reasons(metrics, params)
        if not signs:
            self._signs_since = None
            rate = min(1.0, dt / self._reference_s)
            self._ref = (1.0 - rate) * self._ref + rate * z
            if self._sharp_ref is not None:
                self._sharp_ref = (1.0 - rate) * self._sharp_ref + rate * sharp
            return metrics
        if self._signs_since is None:
            self._signs_since = t
        if signs == ("moved",) and t - self._signs_since >= params.relearn_s:
            # A view that stays moved (and is sharp and lit) becomes the new normal: the start
            # event told central; without relearning the event could never end.
            self._ref = z
            self._sharp_ref = sharp
            self._signs_since = None
        return metrics
