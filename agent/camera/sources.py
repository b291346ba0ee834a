"""Frame sources: picamera2, OpenCV capture (V4L2, RTSP/HTTP, video file) and image folders.

Every method blocks; the pipeline calls them from its own capture thread.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from agent.camera.spec import SourceSettings
from agent.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class FrameSource(Protocol):
    """A camera or recording. `live` sources are drained with grab() between wanted frames."""

    live: bool

    def open(self) -> None:
        """Open the device; DeviceError when it is not there (yet), ConfigError when never."""
        ...

    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None when the stream ended or dropped."""
        ...

    def grab(self) -> bool:
        """Skip one frame without decoding it (live sources); False when the stream dropped."""
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...


def _bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return np.ascontiguousarray(frame[:, :, :3])
    return frame


class OpenCvSource:
    """cv2.VideoCapture over a V4L2 device, a network stream or a video file."""

    def __init__(
        self,
        target: str | int,
        *,
        live: bool,
        api: int = cv2.CAP_ANY,
        params: list[int] | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.live = live
        self._target = target
        self._api = api
        self._params = params or []
        self._size = size
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        """Open the capture; DeviceError if OpenCV cannot."""
        self.close()
        try:
            cap = cv2.VideoCapture(self._target, self._api, self._params)
            if self._size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size[1])
            if self.live:
                # Keep the driver queue short so a slow reader sees recent frames.
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        except cv2.error as exc:
            raise DeviceError(f"cannot open {self._target}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise DeviceError(f"cannot open {self._target}")
        self._cap = cap

    def read(self) -> np.ndarray | None:
        """Next frame or None at the end of the stream."""
        if self._cap is None:
            raise DeviceError("source is not open")
        try:
            ok, frame = self._cap.read()
        except cv2.error as exc:
            raise DeviceError(f"read failed: {exc}") from exc
        return _bgr(frame) if ok and frame is not None else None

    def grab(self) -> bool:
        """Skip a frame without decoding it."""
        if self._cap is None:
            return False
        try:
            return bool(self._cap.grab())
        except cv2.error as exc:
            raise DeviceError(f"grab failed: {exc}") from exc

    def close(self) -> None:
        """Release the capture."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """Images of a folder in name order, one frame each; None after the last."""

    live = False

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        """List the folder; DeviceError when it has no images."""
        try:
            files = sorted(p for p in self._folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise DeviceError(f"cannot list {self._folder}: {exc}") from exc
        if not files:
            raise DeviceError(f"no images in {self._folder}")
        self._files = files
        self._next = 0

    def read(self) -> np.ndarray | None:
        """Next decodable image; unreadable files are skipped with a warning."""
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            log.warning("skipping unreadable image %s", path)
        return None

    def grab(self) -> bool:
        """Skip one image."""
        self._next += 1
        return self._next <= len(self._files)

    def close(self) -> None:
        """Nothing to release."""
        self._files = []


class Picamera2Source:
    """The Raspberry Pi camera through picamera2 (from apt python3-picamera2 on Pi OS)."""

    live = True

    def __init__(self, index: int, size: tuple[int, int] | None, fps: float) -> None:
        self._index = index
        self._size = size or (640, 480)
        self._fps = fps
        self._cam: Any = None

    def open(self) -> None:
        """Start the camera at the configured size and frame rate."""
        try:
            from picamera2 import Picamera2  # only present on a Pi
        except ImportError as exc:
            raise ConfigError([("source", "picamera2 is not installed on this system")]) from exc
        self.close()
        try:
            cam = Picamera2(self._index)
            # picamera2 "RGB888" is B,G,R in memory: what OpenCV calls BGR.
            config = cam.create_video_configuration(
                main={"size": self._size, "format": "RGB888"},
                controls={"FrameRate": self._fps},
            )
            cam.configure(config)
            cam.start()
        except (RuntimeError, OSError, IndexError, ValueError) as exc:
            raise DeviceError(f"picamera2 {self._index}: {exc}") from exc
        self._cam = cam

    def read(self) -> np.ndarray | None:
        """The next frame from the camera."""
        if self._cam is None:
            raise DeviceError("source is not open")
        try:
            return _bgr(np.asarray(self._cam.capture_array("main")))
        except (RuntimeError, OSError) as exc:
            raise DeviceError(f"picamera2 capture failed: {exc}") from exc

    def grab(self) -> bool:
        """picamera2 delivers at the configured rate; nothing to skip."""
        return self._cam is not None

    def close(self) -> None:
        """Stop and close the camera."""
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
                cam.close()
            except (RuntimeError, OSError) as exc:
                log.warning("picamera2 close failed: %s", exc)


def open_source(
    cam: SourceSettings, base_dir: Path | None = None, stall_s: float | None = None
) -> FrameSource:
    """The (unopened) source a camera's `source` key names."""
    spec = cam.source
    size = (cam.width, cam.height) if cam.width and cam.height else None
    timeout_ms = int((stall_s or cam.stall_s) * 1000)
    if spec.startswith("picamera2"):
        _, _, index = spec.partition(":")
        return Picamera2Source(int(index or 0), size, cam.fps)
    if spec.startswith("v4l2:"):
        dev = spec[5:]
        target: str | int = int(dev) if dev.isdigit() else dev
        return OpenCvSource(target, live=True, api=cv2.CAP_V4L2, size=size)
    if spec.startswith("file:"):
        path = Path(spec[5:]).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if path.is_dir():
            return ImageFolderSource(path)
        return OpenCvSource(str(path), live=False)
    # Network stream: FFmpeg's own timeouts keep a dead camera from blocking a read forever.
    return OpenCvSource(
        spec,
        live=True,
        api=cv2.CAP_FFMPEG,
        params=[
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            timeout_ms,
        ],
    )
