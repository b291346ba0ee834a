"""Debian's python3-opencv (Raspberry Pi OS) has no `cv2.data`: the people detector's Haar
cascades come from Debian's opencv-data package instead (found by scripts/arm64-check)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from agent.errors import ConfigError
from agent.vision import people

WHEEL_CASCADES = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]


def test_without_cv2_data_the_cascades_come_from_debians_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(cv2, "data")
    monkeypatch.setattr(people, "DEBIAN_CASCADES", WHEEL_CASCADES)  # stands in for opencv-data
    assert not people._cascade("haarcascade_frontalface_default.xml").empty()


def test_without_cv2_data_or_opencv_data_the_error_names_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(cv2, "data")
    monkeypatch.setattr(people, "DEBIAN_CASCADES", tmp_path)
    with pytest.raises(ConfigError, match="apt install opencv-data"):
        people._cascade("haarcascade_frontalface_default.xml")
