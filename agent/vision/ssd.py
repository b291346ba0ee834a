"""The default person detector: the SSDLite MobileNetV2 model through OpenCV DNN (no TensorFlow).

One pass over the whole frame at 300x300, then, within a per-frame time budget, a second pass
for far people: on square crops around small motion regions, or on overlapping tiles of the
frame when there are no regions (the census after a camera opens). Without the model the
camera runs the HOG + faces cascade and says `degraded` (see `build_ssd`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from agent.errors import ConfigError, DeviceError
from agent.vision import models
from agent.vision.detector_config import SsdDetectorConfig
from agent.vision.detectors import Detector, nms
from agent.vision.geometry import Box
from agent.vision.ssd_graph import OUTPUT, SsdSpec
from agent.vision.tracker import Detection

log = logging.getLogger(__name__)

SPEC = SsdSpec()
Window = tuple[int, int, int, int]  # x, y, w, h in frame pixels
_EDGE_PX = 2  # a tile box this close to an inner tile edge is a cut person: the full pass owns it


def load_net(files: models.ModelFiles, graph_sha256: str | None = None) -> cv2.dnn.Net:
    """The network from the graph and its text graph (made again if missing or stale)."""
    if not files.graph.is_file():
        raise ConfigError([("detector.model_dir", f"no person model at {files.graph}")])
    models.ensure_text_graph(files, graph_sha256)
    try:
        net = cv2.dnn.readNetFromTensorflow(str(files.graph), str(files.text_graph))
    except cv2.error as exc:
        why = f"OpenCV cannot load {files.graph}: {exc}"
        raise ConfigError([("detector.model_dir", why)]) from exc
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def blob_of(image: np.ndarray, size: int = SPEC.input_size) -> np.ndarray:
    """The model's input: RGB, size x size (aspect not kept, as in training), scaled to [-1, 1]."""
    return cv2.dnn.blobFromImage(
        image, 1.0 / 127.5, (size, size), (127.5, 127.5, 127.5), swapRB=True, crop=False
    )


def tiles(w: int, h: int, fraction: float) -> list[Window]:
    """Overlapping square tiles of side `fraction` x the short side, covering the frame."""
    side = max(1, round(min(w, h) * fraction))

    def starts(total: int) -> list[int]:
        if total <= side:
            return [0]
        n = int(np.ceil((total - side) / (0.875 * side))) + 1  # at least 1/8 overlap
        return [round(i * (total - side) / (n - 1)) for i in range(n)]

    return [(x, y, min(side, w), min(side, h)) for y in starts(h) for x in starts(w)]


def crops_around(rois: Sequence[Box], w: int, h: int, below: int, cap: int) -> list[Window]:
    """A square crop three times as tall as each small region, inside the frame."""
    out = []
    for rx, ry, rw, rh in rois:
        if rh >= below:
            continue
        side = int(min(max(3 * rh, 96), cap, w, h))
        cx, cy = rx + rw / 2, ry + rh / 2
        x = int(min(max(cx - side / 2, 0), w - side))
        y = int(min(max(cy - side / 2, 0), h - side))
        out.append((x, y, side, side))
    return out


class SsdDetector:
    """SSDLite person model; blocking; one network, calls serialised by a lock."""

    name = "ssd"
    degraded: str | None = None

    def __init__(
        self,
        cfg: SsdDetectorConfig,
        files: models.ModelFiles,
        clock: Callable[[], float] = time.perf_counter,
        verified: bool = False,
    ) -> None:
        self._cfg = cfg
        self._net = load_net(files, models.GRAPH_SHA256 if verified else None)
        cv2.setNumThreads(cfg.threads)  # process-wide in OpenCV: the gateway runs one model
        self._clock = clock
        self._lock = threading.Lock()
        self._turn = 0  # where the tile scan starts: successive frames cover other tiles first
        self._pass_ms = 0.0  # running mean of one 300x300 pass (ms), from the full passes too

    def raw(self, image: np.ndarray) -> np.ndarray:
        """DetectionOutput rows [_, class, score, x1, y1, x2, y2] (normalised) for one image."""
        self._net.setInput(blob_of(image))
        try:
            out = self._net.forward(OUTPUT)
        except cv2.error as exc:
            raise DeviceError(f"person model failed: {exc}") from exc
        return np.asarray(out).reshape(-1, 7)

    def _pass(self, image: np.ndarray, win: Window, min_score: float) -> list[Detection]:
        x, y, w, h = win
        rows = self.raw(image[y : y + h, x : x + w])
        found = []
        for _, cls, score, x1, y1, x2, y2 in rows:
            if int(cls) != 1 or score < min_score:
                continue
            bx1, by1 = x + max(0.0, float(x1)) * w, y + max(0.0, float(y1)) * h
            bx2, by2 = x + min(1.0, float(x2)) * w, y + min(1.0, float(y2)) * h
            if bx2 > bx1 and by2 > by1:
                found.append(Detection((bx1, by1, bx2 - bx1, by2 - by1), float(score), "person"))
        return found

    def _small(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """The second pass on tiles or around small regions, until the budget is spent."""
        cfg = self._cfg
        h, w = image.shape[:2]
        cap = round(min(w, h) * cfg.tile_fraction)
        wins = (
            tiles(w, h, cfg.tile_fraction)
            if rois is None
            else crops_around(rois, w, h, cfg.small_below, cap)
        )
        if not wins or cfg.small_budget_ms <= 0:
            return []
        k = self._turn % len(wins)
        self._turn += 1
        start, out = self._clock(), []
        for win in wins[k:] + wins[:k]:
            # A pass is started only when it should end within the budget (its cost is the
            # running mean of past passes), so the budget holds on a slow core too.
            if (self._clock() - start) * 1000.0 + self._pass_ms > cfg.small_budget_ms:
                break
            t0 = self._clock()
            for d in self._pass(image, win, cfg.small_min_score):
                if _inside(d.box, win, w, h):
                    out.append(d)
            self._pass_ms = 0.8 * self._pass_ms + 0.2 * (self._clock() - t0) * 1000.0
        return out

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """People in the frame (frame pixels, score = the model's), then far people by budget."""
        h, w = image.shape[:2]
        with self._lock:
            t0 = self._clock()
            found = self._pass(image, (0, 0, w, h), self._cfg.min_score)
            ms = (self._clock() - t0) * 1000.0
            self._pass_ms = ms if self._pass_ms == 0.0 else 0.8 * self._pass_ms + 0.2 * ms
            found += self._small(image, rois)
        return nms(found, self._cfg.nms_iou) if len(found) > 1 else found


def _inside(box: Box, win: Window, w: int, h: int) -> bool:
    """The box is a whole small person of the tile: not cut by an inner tile edge, not big."""
    x, y, bw, bh = box
    wx, wy, ww, wh = win
    if bh > 0.8 * wh:
        return False
    cut_left = wx > 0 and x <= wx + _EDGE_PX
    cut_top = wy > 0 and y <= wy + _EDGE_PX
    cut_right = wx + ww < w and x + bw >= wx + ww - _EDGE_PX
    cut_bottom = wy + wh < h and y + bh >= wy + wh - _EDGE_PX
    return not (cut_left or cut_top or cut_right or cut_bottom)


class Fallback:
    """HOG + faces standing in for the missing model; `degraded` says why."""

    name = "people"

    def __init__(self, inner: Detector, reason: str) -> None:
        self._inner = inner
        self._lock = threading.Lock()  # shared by the cameras like the model would be
        self.degraded: str | None = reason

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """The fallback detector's people."""
        with self._lock:
            return self._inner.detect(image, rois)


def model_root(cfg: SsdDetectorConfig, base_dir: Path | None) -> Path:
    """The models folder a config names (relative to the config's folder), or the default."""
    if cfg.model_dir is None:
        return models.default_dir()
    if cfg.model_dir.is_absolute() or base_dir is None:
        return cfg.model_dir
    return base_dir / cfg.model_dir


def build_ssd(
    cfg: SsdDetectorConfig, base_dir: Path | None, full_frame_fraction: float
) -> Detector:
    """The SSD detector, or HOG + faces marked degraded when the model is missing or altered."""
    files = models.ModelFiles(model_root(cfg, base_dir))
    if not files.graph.is_file():
        why = "missing"
    elif models.sha256_of(files.graph) != models.GRAPH_SHA256:
        why = "not the pinned file (sha256 differs)"  # a torn copy or someone else's graph
    else:
        return SsdDetector(cfg, files, verified=True)
    from agent.vision.people import PeopleDetector

    reason = f"person model {why} ({files.graph}): HOG + faces; run `{models.FETCH_HINT}`"
    log.warning("%s", reason)
    return Fallback(PeopleDetector(cfg.fallback, full_frame_fraction), reason)
