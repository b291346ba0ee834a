"""How the ONNX plug-in reads a detector export's outputs (pure: NumPy only, no I/O).

Layouts, for a square input of side S, C classes and N candidates:

* ``yolov5``: one output [1, N, 5 + C]: cx, cy, w, h in input pixels, objectness, class
  scores (YOLOv5 and YOLOX exports); score = objectness x class.
* ``yolov8``: one output [1, 4 + C, N]: cx, cy, w, h, class scores (YOLOv8, YOLO11 and YOLO26's
  default export).
* ``end2end``: one output [1, K, 6]: x1, y1, x2, y2 in input pixels, score, class id, the
  model's own choice of boxes (YOLO26 exported with ``nms=False``, YOLOv10, and Ultralytics
  exports with ``nms=True``): nothing is suppressed afterwards.
* ``ssd``: boxes [1, N, 4] (x1, y1, x2, y2 as fractions of the input) and scores [1, N, C].
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Layout = Literal["yolov5", "yolov8", "end2end", "ssd"]
# One output's shape as onnxruntime states it: a number, or a name / None for a dynamic axis.
Shape = Sequence[int | str | None]

WANT: dict[str, str] = {
    "yolov5": "[1, N, 5 + C]",
    "yolov8": "[1, 4 + C, N]",
    "end2end": "[1, K, 6]",
    "ssd": "boxes [1, N, 4] and scores [1, N, C]",
}


@dataclass(frozen=True)
class Candidates:
    """Scored boxes before suppression: x1, y1, x2, y2 in input pixels, best class each."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: npt.NDArray[np.int64]


def _dim(d: int | str | None) -> int | None:
    return d if isinstance(d, int) and d >= 0 else None


def _text(shapes: Sequence[Shape]) -> str:
    return ", ".join("x".join(str(_dim(d) or "?") for d in s) for s in shapes)


def class_count(layout: Layout, shapes: Sequence[Shape]) -> int | None:
    """The number of classes the outputs carry (None: dynamic, or given per box)."""
    if layout == "yolov5":
        cols = _dim(shapes[0][2])
        return None if cols is None else cols - 5
    if layout == "yolov8":
        cols = _dim(shapes[0][1])
        return None if cols is None else cols - 4
    if layout == "ssd":
        return _dim(shapes[1][2])
    return None


def _misfit(layout: Layout, shapes: Sequence[Shape]) -> bool:
    """Whether the shapes cannot be this layout (dynamic axes are given the benefit)."""
    if layout == "ssd":
        if len(shapes) < 2 or len(shapes[0]) != 3 or len(shapes[1]) != 3:
            return True
        b, s = shapes[0], shapes[1]
        counts_differ = None not in (_dim(b[1]), _dim(s[1])) and b[1] != s[1]
        return _dim(b[2]) not in (4, None) or counts_differ
    shape = shapes[0]
    if len(shape) != 3 or _dim(shape[0]) not in (1, None):
        return True
    if layout == "end2end":
        return _dim(shape[2]) not in (6, None)
    # Candidates outnumber columns in every real export (hundreds of anchors even at S = 160);
    # the transposed layout's shape is the tell-tale of the other YOLO layout.
    rows, cols = (shape[1], shape[2]) if layout == "yolov5" else (shape[2], shape[1])
    r, c = _dim(rows), _dim(cols)
    least = 6 if layout == "yolov5" else 5
    return (c is not None and c < least) or (r is not None and c is not None and r <= c)


def shape_problem(layout: Layout, shapes: Sequence[Shape], classes: Collection[int]) -> str | None:
    """Why outputs of `shapes` cannot be read as `layout` with these mapped class ids (None:
    they can). Named (dynamic) axes are not judged; the frames' real shapes are, later."""
    if not shapes or _misfit(layout, shapes):
        return (
            f"outputs {_text(shapes)} do not fit layout {layout} ({WANT[layout]}); "
            f"yolov5 is {WANT['yolov5']}, yolov8 {WANT['yolov8']}, end2end {WANT['end2end']}, "
            f"ssd {WANT['ssd']}"
        )
    count = class_count(layout, shapes)
    beyond = sorted(k for k in classes if count is not None and k >= count)
    if count is not None and beyond:
        return (
            f"outputs {_text(shapes)} read as layout {layout} have {count} classes "
            f"(0-{count - 1}); classes maps {beyond}"
        )
    return None


def candidates(
    layout: Layout,
    outputs: Sequence[npt.ArrayLike],
    size: int,
    classes: Collection[int],
    min_score: float,
) -> Candidates:
    """The boxes scoring at least `min_score`, from one frame's outputs; ValueError when the
    outputs do not fit `layout` (see shape_problem)."""
    arrays = [np.asarray(o, dtype=np.float32) for o in outputs]
    problem = shape_problem(layout, [a.shape for a in arrays], classes)
    if problem:
        raise ValueError(problem)
    if layout == "end2end":
        rows = arrays[0][0]
        keep = rows[:, 4] >= min_score
        cls = np.rint(rows[keep, 5]).astype(np.int64)
        return Candidates(rows[keep, :4], rows[keep, 4], cls)
    if layout == "ssd":
        boxes = arrays[0][0] * np.float32(size)
        scores = arrays[1][0].copy()
        mapped = np.zeros(scores.shape[1], bool)
        mapped[[k for k in classes if 0 <= k < scores.shape[1]]] = True
        scores[:, ~mapped] = 0.0  # the background column never wins
    else:
        rows = arrays[0][0] if layout == "yolov5" else arrays[0][0].T
        scores = rows[:, 5:] * rows[:, 4:5] if layout == "yolov5" else rows[:, 4:]
        cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    best = np.argmax(scores, axis=1)
    score = scores[np.arange(len(scores)), best]
    keep = score >= min_score
    return Candidates(boxes[keep], score[keep], best[keep].astype(np.int64))
