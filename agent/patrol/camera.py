"""Still photos for the patrol device: one frame from the configured source, JPEG with GPS EXIF.

Sources are the ones `agent.camera.sources.open_source` knows (picamera2, V4L2, RTSP/HTTP,
video file, image folder); OpenCV is imported only when a camera is used. Encoding is Pillow,
EXIF is piexif. Every blocking step runs in a worker thread, one capture at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import piexif
from PIL import Image

from agent.camera.spec import SourceSpec
from agent.errors import CodecError, ConfigError, DeviceError
from agent.patrol.config import PatrolCameraConfig
from firmware_bridge.types import Fix

log = logging.getLogger(__name__)

SOFTWARE = "grid-edge"
# Live sources buffer a frame or two; these are skipped so the photo shows the present.
_STALE_FRAMES = 2


class _Frames(Protocol):
    live: bool

    def open(self) -> None: ...
    def read(self) -> Any: ...
    def grab(self) -> bool: ...
    def close(self) -> None: ...


def _rational(value: float, denominator: int) -> tuple[int, int]:
    return (round(abs(value) * denominator), denominator)


def _dms(deg: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    # Degrees, minutes, seconds/1000: 1/1000 arc-second is 3 cm, far below GPS error.
    total = round(abs(deg) * 3_600_000)  # milli-arc-seconds
    d, rest = divmod(total, 3_600_000)
    m, ms = divmod(rest, 60_000)
    return ((d, 1), (m, 1), (ms, 1000))


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def gps_ifd(fix: Fix, acc_m: float | None = None) -> dict[int, Any]:
    """The EXIF GPS IFD of a positioned fix (position, altitude, GPS date/time, accuracy)."""
    if fix.lat is None or fix.lon is None:
        return {}
    ifd: dict[int, Any] = {
        piexif.GPSIFD.GPSVersionID: (2, 3, 0, 0),
        piexif.GPSIFD.GPSLatitudeRef: b"N" if fix.lat >= 0 else b"S",
        piexif.GPSIFD.GPSLatitude: _dms(fix.lat),
        piexif.GPSIFD.GPSLongitudeRef: b"E" if fix.lon >= 0 else b"W",
        piexif.GPSIFD.GPSLongitude: _dms(fix.lon),
        piexif.GPSIFD.GPSMapDatum: b"WGS-84",
        piexif.GPSIFD.GPSStatus: b"A" if fix.valid else b"V",
    }
    if fix.fix in ("2d", "3d"):
        ifd[piexif.GPSIFD.GPSMeasureMode] = fix.fix[0].encode()
    if fix.alt_m is not None:
        ifd[piexif.GPSIFD.GPSAltitudeRef] = 0 if fix.alt_m >= 0 else 1
        ifd[piexif.GPSIFD.GPSAltitude] = _rational(fix.alt_m, 100)
    if fix.utc_ms is not None:
        t = _utc(fix.utc_ms)
        ifd[piexif.GPSIFD.GPSDateStamp] = t.strftime("%Y:%m:%d").encode()
        sec_ms = t.second * 1000 + t.microsecond // 1000
        ifd[piexif.GPSIFD.GPSTimeStamp] = ((t.hour, 1), (t.minute, 1), (sec_ms, 1000))
    if fix.sats is not None:
        ifd[piexif.GPSIFD.GPSSatellites] = str(fix.sats).encode()
    if fix.hdop is not None:
        ifd[piexif.GPSIFD.GPSDOP] = _rational(fix.hdop, 100)
    acc = acc_m if acc_m is not None else fix.acc_m
    if acc is not None:
        ifd[piexif.GPSIFD.GPSHPositioningError] = _rational(acc, 100)
    return ifd


def exif_bytes(fix: Fix | None, taken_ms: int, acc_m: float | None = None) -> bytes:
    """EXIF with DateTimeOriginal (UTC, offset +00:00) and, given a positioned fix, GPS tags."""
    t = _utc(taken_ms)
    stamp = t.strftime("%Y:%m:%d %H:%M:%S").encode()
    sub = f"{t.microsecond // 1000:03d}".encode()
    exif = {
        "0th": {piexif.ImageIFD.Software: SOFTWARE.encode(), piexif.ImageIFD.DateTime: stamp},
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: stamp,
            piexif.ExifIFD.SubSecTimeOriginal: sub,
            piexif.ExifIFD.OffsetTimeOriginal: b"+00:00",
        },
        "GPS": gps_ifd(fix, acc_m) if fix is not None and fix.valid else {},
    }
    return bytes(piexif.dump(exif))


def read_gps(jpeg_or_path: bytes | str) -> dict[str, Any]:
    """Lat, lon, alt and GPS time (ms) read back from a JPEG's EXIF; {} when it has none."""
    gps = piexif.load(jpeg_or_path).get("GPS") or {}
    if piexif.GPSIFD.GPSLatitude not in gps:
        return {}

    def deg(parts: tuple[tuple[int, int], ...], ref: bytes, neg: bytes) -> float:
        d, m, s = (Fraction(n, q) for n, q in parts)
        value = float(d + m / 60 + s / 3600)
        return -value if ref == neg else value

    out: dict[str, Any] = {
        "lat": deg(gps[piexif.GPSIFD.GPSLatitude], gps[piexif.GPSIFD.GPSLatitudeRef], b"S"),
        "lon": deg(gps[piexif.GPSIFD.GPSLongitude], gps[piexif.GPSIFD.GPSLongitudeRef], b"W"),
    }
    if piexif.GPSIFD.GPSAltitude in gps:
        n, q = gps[piexif.GPSIFD.GPSAltitude]
        out["alt_m"] = (n / q) * (-1 if gps.get(piexif.GPSIFD.GPSAltitudeRef) == 1 else 1)
    if piexif.GPSIFD.GPSDateStamp in gps and piexif.GPSIFD.GPSTimeStamp in gps:
        day = dt.datetime.strptime(gps[piexif.GPSIFD.GPSDateStamp].decode(), "%Y:%m:%d")
        (h, _), (m, _), (sn, sq) = gps[piexif.GPSIFD.GPSTimeStamp]
        when = day.replace(tzinfo=dt.UTC) + dt.timedelta(hours=h, minutes=m, seconds=sn / sq)
        out["utc_ms"] = round(when.timestamp() * 1000)
    return out


def encode_jpeg(
    frame: Any, exif: bytes, *, quality: int, max_size: tuple[int, int] | None
) -> bytes:
    """JPEG of a BGR uint8 frame (h x w x 3), shrunk to fit max_size, with `exif` embedded."""
    shape: tuple[int, ...] = tuple(getattr(frame, "shape", ()))
    if len(shape) != 3 or shape[2] != 3 or str(getattr(frame, "dtype", "")) != "uint8":
        raise CodecError(f"not a BGR uint8 frame: shape {shape}")
    h, w = int(shape[0]), int(shape[1])
    # Pillow's raw "BGR" decoder takes OpenCV's byte order as it is: no numpy needed here.
    image = Image.frombuffer("RGB", (w, h), frame.tobytes(), "raw", "BGR", 0, 1)
    if max_size is not None:
        image.thumbnail(max_size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    try:
        image.save(buf, "JPEG", quality=quality, exif=exif, optimize=True)
    except (OSError, ValueError) as exc:
        raise CodecError(f"JPEG encoding failed: {exc}") from exc
    return buf.getvalue()


def open_frames(cfg: PatrolCameraConfig, base_dir: Path | None = None) -> _Frames:
    """The unopened frame source `cfg.source` names (OpenCV is imported here, not before)."""
    try:
        from agent.camera.sources import open_source
    except ImportError as exc:
        raise DeviceError(f"camera support needs OpenCV (opencv-python-headless): {exc}") from exc
    try:
        spec = SourceSpec(cfg.source, cfg.width, cfg.height, stall_s=cfg.timeout_s)
    except ValueError as exc:
        raise ConfigError([("camera", str(exc))]) from exc
    source: _Frames = open_source(spec, base_dir=base_dir)
    return source


class Camera:
    """The patrol camera: `await jpeg(fix, taken_ms)` is a JPEG, or DeviceError when it fails."""

    def __init__(self, cfg: PatrolCameraConfig, *, base_dir: Path | None = None) -> None:
        self.cfg = cfg
        self._base_dir = base_dir
        self._source: _Frames | None = None
        self._lock = asyncio.Lock()  # one capture at a time; sources are not thread-safe
        self._st: dict[str, Any] = {"photos": 0, "failures": 0, "last_error": None, "open": False}

    async def __aenter__(self) -> Camera:
        # Opening early warms a Pi camera up; a camera missing now is retried at the first photo.
        async with self._lock:
            try:
                await asyncio.to_thread(self._ensure_open)
            except (DeviceError, ConfigError) as exc:
                self._failed(exc)
        return self

    async def __aexit__(self, *exc: object) -> None:
        async with self._lock:
            await asyncio.to_thread(self._close)

    def status(self) -> dict[str, Any]:
        """Counters for the status message."""
        return {"source": self.cfg.source, **self._st}

    def ok(self) -> bool:
        """True unless the last attempt to open or read the camera failed."""
        return self._st["last_error"] is None

    async def jpeg(self, fix: Fix | None, taken_ms: int, acc_m: float | None = None) -> bytes:
        """One photo now, as JPEG with EXIF time and (given a positioned fix) GPS tags."""
        async with self._lock:
            try:
                data = await asyncio.to_thread(self._take, fix, taken_ms, acc_m)
            except (DeviceError, CodecError, ConfigError) as exc:
                self._failed(exc)
                raise DeviceError(str(exc)) from exc
        self._st["photos"] += 1
        self._st["last_error"] = None
        return data

    # ----- worker thread ---------------------------------------------------------------------
    def _ensure_open(self) -> _Frames:
        if self._source is None:
            source = open_frames(self.cfg, self._base_dir)
            source.open()
            self._source = source
            self._st["open"] = True
            log.info("camera %s open", self.cfg.source)
        return self._source

    def _close(self) -> None:
        source, self._source = self._source, None
        self._st["open"] = False
        if source is not None:
            source.close()

    def _frame(self) -> Any:
        source = self._ensure_open()
        if source.live:
            for _ in range(_STALE_FRAMES):
                source.grab()
        frame = source.read()
        if frame is None and not source.live:
            # A recording or image folder ran out: start it over (the demo loops its pictures).
            self._close()
            frame = self._ensure_open().read()
        if frame is None:
            self._close()  # a live stream that stopped: reopen it for the next photo
            raise DeviceError(f"camera {self.cfg.source} gave no frame")
        return frame

    def _take(self, fix: Fix | None, taken_ms: int, acc_m: float | None) -> bytes:
        frame = self._frame()
        size = (self.cfg.width, self.cfg.height)
        max_size = None if size[0] is None or size[1] is None else (size[0], size[1])
        return encode_jpeg(
            frame,
            exif_bytes(fix, taken_ms, acc_m),
            quality=self.cfg.jpeg_quality,
            max_size=max_size,
        )

    def _failed(self, exc: Exception) -> None:
        self._st["failures"] += 1
        self._st["last_error"] = str(exc)
        log.warning("camera %s: %s", self.cfg.source, exc)
