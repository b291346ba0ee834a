"""Object detectors: OpenCV HOG people (default) and an operator-supplied YOLO-style ONNX model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from agent.errors import ConfigError, DeviceError
from agent.vision.detector_config import (
    HogDetectorConfig,
    OnnxDetectorConfig,
    PeopleDetectorConfig,
)
from agent.vision.geometry import Box, area, clip, expand, merge_overlapping, scale_box
from agent.vision.layouts import candidates, shape_problem
from agent.vision.tracker import Detection

log = logging.getLogger(__name__)

# The default people detector's window and the margin around it that HOG needs.
HOG_WIN = (64, 128)


class Detector(Protocol):
    """Finds objects; blocking, called from a worker thread, one caller at a time."""

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """Detections in `image` pixels, looking only near `rois` when given (None: everywhere)."""
        ...


def fit_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`image` shrunk so its longer side is at most `max_side`, and the scale used (<= 1)."""
    h0, w0 = image.shape[:2]
    s = min(1.0, max_side / max(h0, w0))
    if s >= 1.0:
        return image, 1.0
    return cv2.resize(image, (round(w0 * s), round(h0 * s)), interpolation=cv2.INTER_AREA), s


def nms(detections: Sequence[Detection], iou_max: float) -> list[Detection]:
    """Greedy non-maximum suppression per label, highest score kept."""
    out: list[Detection] = []
    for label in sorted({d.label for d in detections}):
        group = [d for d in detections if d.label == label]
        boxes = np.array([d.box for d in group], dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in group], dtype=np.float64)
        x1, y1 = boxes[:, 0], boxes[:, 1]
        x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
        areas = np.clip(boxes[:, 2], 0, None) * np.clip(boxes[:, 3], 0, None)
        order = np.argsort(-scores, kind="stable")
        while order.size:
            i = int(order[0])
            out.append(group[i])
            rest = order[1:]
            w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
            h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
            inter = w * h
            union = areas[i] + areas[rest] - inter
            overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            order = rest[overlap <= iou_max]
    return out


def search_regions(
    rois: Sequence[Box] | None,
    w: int,
    h: int,
    s: float,
    cfg: HogDetectorConfig | PeopleDetectorConfig,
    full_fraction: float,
) -> list[Box]:
    """Where HOG looks in a `w` x `h` image scaled by `s`: grown, merged rois or the whole image."""
    full: list[Box] = [(0.0, 0.0, float(w), float(h))]
    if rois is None:
        return full
    pad = 2 * cfg.padding
    grown = []
    for roi in rois:
        box = scale_box(roi, s)
        tall = box[3] * (1.0 + 2.0 * cfg.roi_margin)
        # A person fills about 3/4 of the 1:2 HOG window: the crop must be at least half as
        # wide as it is tall, however thin the moving blob was.
        grown.append(
            clip(
                expand(box, cfg.roi_margin, max(HOG_WIN[0] + pad, tall / 2.0), HOG_WIN[1] + pad),
                w,
                h,
            )
        )
    regions = merge_overlapping([g for g in grown if area(g) > 0])
    if sum(area(r) for r in regions) >= full_fraction * w * h:
        return full  # one pass over the frame is cheaper than many overlapping crops
    return regions


class HogDetector:
    """OpenCV's default HOG + linear SVM people detector, run on motion regions."""

    name = "hog"

    def __init__(self, cfg: HogDetectorConfig, full_frame_fraction: float = 0.4) -> None:
        self._cfg = cfg
        self._full = full_frame_fraction
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector()))

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """People in the frame (or near the rois), scores are SVM margins >= min_score."""
        cfg = self._cfg
        img, s = fit_side(image, cfg.max_side)
        h, w = img.shape[:2]
        found: list[Detection] = []
        for rx, ry, rw, rh in search_regions(rois, w, h, s, cfg, self._full):
            x, y, cw, ch = round(rx), round(ry), round(rw), round(rh)
            if cw < HOG_WIN[0] or ch < HOG_WIN[1]:
                continue
            crop = img[y : y + ch, x : x + cw]
            rects, weights = self._hog.detectMultiScale(
                crop,
                hitThreshold=cfg.hit_threshold,
                winStride=(cfg.win_stride, cfg.win_stride),
                padding=(cfg.padding, cfg.padding),
                scale=cfg.scale,
            )
            for (bx, by, bw, bh), weight in zip(rects, np.ravel(weights), strict=True):
                if float(weight) < cfg.min_score:
                    continue
                box = ((bx + x) / s, (by + y) / s, bw / s, bh / s)
                found.append(Detection(box, float(weight), "person"))
        # Overlapping crops can find the same person twice.
        return nms(found, 0.5) if len(found) > 1 else found


# The input element types the plug-in can fill, by onnxruntime's name for them.
INPUT_TYPES: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
}


def input_side(dims: Sequence[int | str | None], input_size: int | None) -> int:
    """The square input side: the model's own when its input [1, 3, S, S] is fixed (a
    different input_size is refused), else input_size, which a dynamic input needs."""
    side = dims[2] if len(dims) == 4 and isinstance(dims[2], int) and dims[2] == dims[3] else None
    if side is not None and input_size not in (None, side):
        problem = f"the model's input is fixed at {side} x {side}, not {input_size}"
        raise ConfigError([("detector.input_size", problem)])
    if input_size is not None:
        return input_size
    if side is None:
        problem = f"model input {list(dims)} is not fixed; set input_size"
        raise ConfigError([("detector.input_size", problem)])
    return side


def onnx_errors() -> tuple[type[BaseException], ...]:
    """What loading or running a model may raise: onnxruntime's own error types derive from
    Exception only, so they are named here."""
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    names = (
        "Fail",
        "InvalidArgument",
        "InvalidGraph",
        "InvalidProtobuf",
        "NoSuchFile",
        "NotImplemented",
        "RuntimeException",
        "EPFail",
    )
    found = (getattr(ort_state, n, None) for n in names)
    return (RuntimeError, ValueError, OSError, *(e for e in found if isinstance(e, type)))


class OnnxDetector:
    """A detector export (layouts: agent/vision/layouts.py) on the whole, letterboxed frame."""

    name = "onnx"

    def __init__(self, cfg: OnnxDetectorConfig, base_dir: Path | None = None) -> None:
        """Loads the model and checks its input and output shapes against the config
        (ConfigError naming the shapes when they do not fit)."""
        import onnxruntime as ort  # only operators who configure a model pay for the import

        self._errors = onnx_errors()
        path = cfg.model if cfg.model.is_absolute() or base_dir is None else base_dir / cfg.model
        if not path.is_file():
            raise ConfigError([("detector.model", f"no model file at {path}")])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = cfg.threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(path), opts, providers=["CPUExecutionProvider"]
            )
        except self._errors as exc:
            raise ConfigError(
                [("detector.model", f"onnxruntime cannot load {path}: {exc}")]
            ) from exc
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self._size = input_side(inp.shape, cfg.input_size)
        # A half-precision export traced on a GPU (YOLOv5 `--half`) takes float16 frames.
        dtype = INPUT_TYPES.get(inp.type)
        if dtype is None:
            wrong = f"model input type {inp.type}; the plug-in sends float (0-1 RGB)"
            raise ConfigError([("detector.model", wrong)])
        self._dtype = dtype
        shapes = [o.shape for o in self._session.get_outputs()]
        misfit = shape_problem(cfg.layout, shapes, cfg.classes)
        if misfit:
            raise ConfigError([("detector.layout", misfit)])
        self._cfg = cfg

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        h, w = image.shape[:2]
        r = min(self._size / h, self._size / w)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        px, py = (self._size - nw) // 2, (self._size - nh) // 2
        canvas = np.full((self._size, self._size, 3), 114, dtype=np.uint8)
        canvas[py : py + nh, px : px + nw] = cv2.resize(image, (nw, nh))
        blob = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        blob = blob.astype(self._dtype, copy=False)
        return np.ascontiguousarray(blob), r, float(px), float(py)

    def decode(
        self, outputs: Sequence[Any], r: float, px: float, py: float, w: int, h: int
    ) -> list[Detection]:
        """Detections from one frame's raw outputs, in frame pixels: suppressed, then clipped."""
        cfg = self._cfg
        found = []
        c = candidates(cfg.layout, outputs, self._size, cfg.classes, cfg.score_threshold)
        for (x1, y1, x2, y2), score, k in zip(c.boxes, c.scores, c.classes, strict=True):
            label = cfg.classes.get(int(k))
            if label is not None:  # a class the operator did not map is not reported
                x, y = float(x1 - px) / r, float(y1 - py) / r
                box = (x, y, float(x2 - x1) / r, float(y2 - y1) / r)
                found.append(Detection(box, float(score), label))
        # Suppression on the boxes as the model gave them, as the exporters' own decoders do:
        # clipped first, boxes crossing the frame's edge overlap more and fewer survive.
        # An end2end model has chosen its boxes itself.
        if cfg.layout != "end2end":
            found = nms(found, cfg.nms_iou)
        clipped = (Detection(clip(d.box, w, h), d.score, d.label) for d in found)
        return [d for d in clipped if area(d.box) > 0]

    def detect(self, image: np.ndarray, rois: Sequence[Box] | None) -> list[Detection]:
        """Detections on the whole frame; rois only decide that it runs (YOLO sees it all)."""
        h, w = image.shape[:2]
        blob, r, px, py = self._letterbox(image)
        try:
            outputs = self._session.run(None, {self._input: blob})
            return self.decode(outputs, r, px, py, w, h)
        except self._errors as exc:
            raise DeviceError(f"ONNX detector failed: {exc}") from exc
