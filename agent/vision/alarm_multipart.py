"""Camera alarms that carry pictures: multipart bodies read in slices, limits enforced as they come.

The event part is the first XML or JSON part; the picture is the first image part that is a
well-formed JPEG within the limits. Other parts are counted against the limits and ignored.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from dataclasses import replace

from PIL import Image

from agent.errors import CodecError
from agent.vision.alarm_parse import CameraAlarm, parse_alarm
from agent.vision.multipart import Limits, MultipartReader, Part, boundary_of

log = logging.getLogger(__name__)

MULTIPART_TYPES = frozenset({"multipart/form-data", "multipart/mixed"})
_XML = frozenset({"application/xml", "text/xml"})
# A camera picture is a frame, never a poster: refuse decompression bombs.
MAX_PICTURE_PIXELS = 8192 * 8192
_SLICE = 65536


def event_media_type(part: Part) -> str | None:
    """application/json or application/xml for a part that holds the event notification."""
    ctype, name = part.content_type, part.filename
    if ctype == "application/json" or name.endswith(".json"):
        return "application/json"
    if ctype in _XML or name.endswith(".xml"):
        return "application/xml"
    return None


def checked_jpeg(data: bytes) -> bytes | None:
    """`data` when it is a whole JPEG of sane size that decodes, else None (blocking)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            # The size is known from the header: refuse a bomb before decoding it.
            if img.format != "JPEG" or img.width * img.height > MAX_PICTURE_PIXELS:
                return None
            # Decoding at 1/8 scale still reads every byte, so a torn picture fails here too.
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return data


def alarm_from_parts(camera_id: str, parts: Sequence[Part]) -> tuple[CameraAlarm, list[bytes]]:
    """The alarm of the first event part and the candidate pictures; CodecError without one."""
    alarm: CameraAlarm | None = None
    pictures: list[bytes] = []
    for part in parts:
        media = event_media_type(part)
        if media is not None and alarm is None:
            alarm = parse_alarm(camera_id, media, part.data)
        elif part.is_picture and part.dropped:
            log.warning("camera %s sent a picture over the size limit; not used", camera_id)
        elif part.is_picture:
            pictures.append(part.data)
    if alarm is None:
        raise CodecError("no XML or JSON event notification part")
    return alarm, pictures


async def with_picture(alarm: CameraAlarm, pictures: Sequence[bytes]) -> CameraAlarm:
    """The alarm carrying the first picture that checks out as a JPEG (checked off the loop)."""
    for data in pictures:
        jpeg = await asyncio.to_thread(checked_jpeg, data)
        if jpeg is not None:
            return replace(alarm, picture=jpeg)
        log.warning("camera %s sent a picture that is not a readable JPEG", alarm.camera_id)
    return alarm


async def read_multipart_alarm(
    reader: asyncio.StreamReader,
    camera_id: str,
    content_type: str,
    length: int,
    limits: Limits,
    *,
    read_timeout_s: float,
    body_timeout_s: float,
) -> CameraAlarm:
    """Read `length` body bytes through the multipart parser; TimeoutError, CodecError
    (PartLimitError when a limit is broken: stop reading at once)."""
    parts: list[Part] = []
    parser = MultipartReader(boundary_of(content_type), limits, parts.append)
    left = length
    async with asyncio.timeout(body_timeout_s):
        while left > 0:
            async with asyncio.timeout(read_timeout_s):
                data = await reader.read(min(left, _SLICE))
            if not data:
                raise CodecError(f"body ended {left} bytes short of Content-Length")
            left -= len(data)
            parser.feed(data)
    parser.finish()
    alarm, pictures = alarm_from_parts(camera_id, parts)
    return await with_picture(alarm, pictures)
