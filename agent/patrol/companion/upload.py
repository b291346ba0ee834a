"""The incident form as the phone sends it: multipart fields and pictures, each size-capped."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, MultipartReader

from agent.patrol.localapi import ApiReply, IncidentIn, parse_body

FIELD_BYTES = 4096  # category, level, note: the note's schema limit is 1000 characters


async def read_incident(
    reader: MultipartReader, *, max_photos: int, photo_bytes: int
) -> tuple[IncidentIn, list[bytes]]:
    """The form's fields checked by the local API's IncidentIn model, and the raw pictures.

    ApiReply: 400 for unknown or nested parts and fields that do not match the schema, 413 for
    a part over its limit or more than `max_photos` pictures.
    """
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiReply(400, "bad_request", "nested multipart is not accepted")
        if part.name == "photo":
            if len(images) >= max_photos:
                raise ApiReply(413, "too_many_photos", f"at most {max_photos} photos")
            data = await _read_limited(part, photo_bytes)
            if data:
                images.append(data)
        elif part.name in ("category", "level", "note"):
            fields[part.name] = (await _read_limited(part, FIELD_BYTES)).decode("utf-8", "replace")
        else:
            raise ApiReply(400, "invalid", f"unknown field {part.name!r}")
    # A form sends text; the level becomes a number only when it is all digits (else a 400).
    if isinstance(fields.get("level"), str) and fields["level"].isdigit():
        fields["level"] = int(fields["level"])
    fields["photo"] = False  # the phone's pictures are the photos; no device capture
    return parse_body(IncidentIn, json.dumps(fields).encode(), required=True), images


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    """One multipart field, refusing it (413) past `limit` bytes."""
    out = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        out += chunk
        if len(out) > limit:
            raise ApiReply(413, "too_large", f"a field over {limit} bytes")
    return bytes(out)
