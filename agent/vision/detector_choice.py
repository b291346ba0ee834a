"""Which detector a camera's config names: built here, above every detector module."""

from __future__ import annotations

from pathlib import Path

from agent.vision.detector_config import (
    HogDetectorConfig,
    OnnxDetectorConfig,
    PeopleDetectorConfig,
    SsdDetectorConfig,
)
from agent.vision.detectors import Detector, HogDetector, OnnxDetector
from agent.vision.people import PeopleDetector
from agent.vision.ssd import build_ssd


def build_detector(
    cfg: SsdDetectorConfig | HogDetectorConfig | PeopleDetectorConfig | OnnxDetectorConfig,
    base_dir: Path | None = None,
    full_frame_fraction: float = 0.4,
) -> Detector:
    """The detector a camera's config names; ConfigError when it cannot be built."""
    if isinstance(cfg, SsdDetectorConfig):
        return build_ssd(cfg, base_dir, full_frame_fraction)
    if isinstance(cfg, OnnxDetectorConfig):
        return OnnxDetector(cfg, base_dir)
    if isinstance(cfg, PeopleDetectorConfig):
        return PeopleDetector(cfg, full_frame_fraction)
    return HogDetector(cfg, full_frame_fraction)
