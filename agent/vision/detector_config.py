"""Config models for a camera's `detector` table: HOG, the people cascade, the SSDLite person
model (the default) and an operator's ONNX model; pure pydantic, no OpenCV import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _HogSettings(_Model):
    """The HOG search both HOG-based detectors share."""

    hit_threshold: float = 0.0
    min_score: float = 0.3
    scale: float = Field(default=1.05, gt=1.0, le=2.0)
    win_stride: int = Field(default=8, ge=4, le=32)
    padding: int = Field(default=8, ge=0, le=64)
    max_side: int = Field(default=640, ge=128, le=4096)
    roi_margin: float = Field(default=0.25, ge=0, le=4)


class HogDetectorConfig(_HogSettings):
    """OpenCV's HOG people detector (ships with opencv 4.x); scores are SVM margins."""

    kind: Literal["hog"] = "hog"


class PeopleDetectorConfig(_HogSettings):
    """HOG full body on an edge-padded frame, small regions upscaled, Haar faces for close-ups."""

    kind: Literal["people"] = "people"
    # Replicated border (px at max_side) so people cut by the frame edge fill a HOG window.
    edge_pad: int = Field(default=32, ge=0, le=128)
    # Search regions lower than upscale_below px (at max_side) are scanned again this much larger.
    upscale: float = Field(default=2.0, ge=1.0, le=4.0)
    upscale_below: int = Field(default=240, ge=0, le=4096)
    upscale_full: bool = False  # also the whole frame (4x the HOG cost at 2.0)
    faces: bool = True  # frontal faces (two Haar cascades agreeing) find close-up people
    face_min: int = Field(default=20, ge=12, le=512)
    face_neighbors: int = Field(default=5, ge=1, le=20)
    face_score: float = Field(default=0.6, gt=0)
    body_per_face: float = Field(default=7.5, ge=1.0, le=12.0)


class SsdDetectorConfig(_Model):
    """The SSDLite person model through OpenCV DNN (default); HOG + faces when it is missing."""

    kind: Literal["ssd"] = "ssd"
    # The models folder (`edge-agent models fetch`); None: $EDGE_AGENT_MODELS or models/ beside
    # the venv. A relative path is relative to the config file's folder.
    model_dir: Path | None = None
    min_score: float = Field(default=0.5, gt=0, le=1)
    nms_iou: float = Field(default=0.45, gt=0, le=1)
    threads: int = Field(default=1, ge=1, le=16)
    # Far people: a second pass on tiles (whole frames) or around small motion regions, for
    # at most small_budget_ms per frame (0: never). Tiles are tile_fraction of the frame's
    # short side; regions lower than small_below px (in frame pixels) get a crop.
    small_budget_ms: float = Field(default=80.0, ge=0, le=10000)
    tile_fraction: float = Field(default=0.5, ge=0.2, le=1.0)
    small_below: int = Field(default=110, ge=8, le=4096)
    small_min_score: float = Field(default=0.6, gt=0, le=1)
    fallback: PeopleDetectorConfig = PeopleDetectorConfig()


class OnnxDetectorConfig(_Model):
    """A YOLO-style ONNX model supplied by the operator; classes map output index to label."""

    kind: Literal["onnx"] = "onnx"
    model: Path
    classes: dict[int, str] = Field(min_length=1)
    # yolov5 [1, N, 5 + C]; yolov8 / yolo11 / yolo26 [1, 4 + C, N]; end2end [1, K, 6] (x1, y1,
    # x2, y2, score, class: NMS inside); ssd: boxes [1, N, 4] (x1, y1, x2, y2, fractions of the
    # input) and scores [1, N, C] as two outputs. See agent/vision/layouts.py.
    layout: Literal["yolov5", "yolov8", "end2end", "ssd"] = "yolov5"
    input_size: int | None = Field(default=None, ge=32, le=4096)
    score_threshold: float = Field(default=0.4, gt=0, le=1)
    nms_iou: float = Field(default=0.45, gt=0, le=1)
    threads: int = Field(default=1, ge=1, le=16)
