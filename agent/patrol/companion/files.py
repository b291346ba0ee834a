"""The companion's I/O helpers: the pairing secret in the state dir, phone photos -> JPEG."""

from __future__ import annotations

import io
import os
import secrets
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from agent.patrol.companion.access import pairing_code

SECRET_FILE = "companion.key"
MAX_PIXELS = 50_000_000  # a 50 MP photo is the largest a phone sends; beyond: a bomb


class PhotoRefused(ValueError):
    """Uploaded bytes that are not a usable picture; `status` is the HTTP answer (413/415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def device_secret(state_dir: Path) -> bytes:
    """The device's pairing secret (32 random bytes, mode 0600), made on first use."""
    path = state_dir / SECRET_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return data


def device_code(state_dir: Path, digits: int) -> str:
    """The pairing code printed by `edge-agent companion-code` and typed on the phone."""
    return pairing_code(device_secret(state_dir), digits)


def phone_jpeg(data: bytes, *, width: int = 1280, height: int = 960, quality: int = 85) -> bytes:
    """A phone picture (any format Pillow reads) as an upright JPEG within width x height.

    Re-encoding checks the type for real, drops the phone's own EXIF (its GPS is the phone's,
    not the device's) and shrinks a 4 MB camera photo to what the link can carry.
    """
    try:
        src = Image.open(io.BytesIO(data))
        if src.width * src.height > MAX_PIXELS:
            raise PhotoRefused(413, f"picture of {src.width}x{src.height} pixels is too large")
        src.draft("RGB", (width, height))  # JPEG: decode at a reduced scale (fast on a Pi)
        img = ImageOps.exif_transpose(src).convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PhotoRefused(415, f"not a picture: {exc}") from None
    img.thumbnail((width, height))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
