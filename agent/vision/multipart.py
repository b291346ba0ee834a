"""Streaming multipart reader over python-multipart with limits on parts, sizes and pictures.

Used for camera pushes (multipart/form-data) and for the endless event streams cameras answer
a subscription with (multipart/mixed, multipart/x-mixed-replace). A part is delivered as soon as
its declared Content-Length is complete, so a live stream's block is not held until the next
boundary arrives; parts without one are delivered at their closing boundary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser

from agent.errors import CodecError

log = logging.getLogger(__name__)

_MAX_HEADER_BYTES = 4096


class PartLimitError(CodecError):
    """A multipart body broke a limit (too many parts, a part too large)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Most parts per body; largest text part; largest picture (bytes)."""

    max_parts: int = 8
    max_part_bytes: int = 65536
    max_picture_bytes: int = 1048576


@dataclass(frozen=True, slots=True)
class Part:
    """One part: lower-case header names, its bytes; `dropped` when a picture was over the limit."""

    headers: dict[str, str]
    data: bytes
    dropped: bool = False

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case."""
        return self.headers.get("content-type", "").partition(";")[0].strip().lower()

    @property
    def filename(self) -> str:
        """The Content-Disposition filename (or name), lower case; "" when none."""
        disp = self.headers.get("content-disposition", "")
        found = {"name": "", "filename": ""}
        for item in disp.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            if key.lower() in found:
                found[key.lower()] = value.strip().strip('"').lower()
        return found["filename"] or found["name"]

    @property
    def is_picture(self) -> bool:
        """An image part (by type, or by a .jpg name when the camera sends octet-stream)."""
        return self.content_type.startswith("image/") or self.filename.endswith((".jpg", ".jpeg"))


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type; CodecError when absent or bad."""
    for item in content_type.split(";")[1:]:
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip().strip('"')
            # Some cameras write the boundary with its leading dashes in the header too.
            if 0 < len(value) <= 70 and value.isascii() and value.isprintable():
                return value.encode("ascii")
            break
    raise CodecError("multipart Content-Type without a usable boundary")


class MultipartReader:
    """Feed bytes in any slices; complete parts go to on_part. CodecError on malformed input."""

    def __init__(self, boundary: bytes, limits: Limits, on_part: Callable[[Part], None]) -> None:
        self._limits = limits
        self._on_part = on_part
        self._parts = 0
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._data = bytearray()
        self._head_bytes = 0
        self._want: int | None = None
        self._delivered = False
        self._dropped = False
        self._error: CodecError | None = None
        self.ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._hfield,
                "on_header_value": self._hvalue,
                "on_header_end": self._hend,
                "on_headers_finished": self._hdone,
                "on_part_data": self._pdata,
                "on_part_end": self._pend,
                "on_end": self._end,
            },
        )

    def feed(self, data: bytes) -> None:
        """Parse more bytes; raises CodecError (PartLimitError for limits) and stays failed."""
        if self._error is not None:
            raise self._error
        try:
            self._parser.write(data)
        except FormParserError as exc:
            self._error = self._error or CodecError(f"malformed multipart: {exc}")
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """The body is complete: CodecError unless the closing boundary was seen."""
        if self._error is not None:
            raise self._error
        if not self.ended:
            raise CodecError("multipart body ended before its closing boundary")

    # --- parser callbacks (they must not raise into the parser) -----------------------------

    def _fail(self, error: CodecError) -> None:
        if self._error is None:
            self._error = error

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            self._fail(PartLimitError(f"more than {self._limits.max_parts} parts"))
        self._headers = {}
        self._data = bytearray()
        self._head_bytes = 0
        self._want = None
        self._delivered = self._dropped = False

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]
        self._count_head(end - start)

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        self._count_head(end - start)

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > _MAX_HEADER_BYTES:
            self._fail(PartLimitError(f"part headers over {_MAX_HEADER_BYTES} bytes"))

    def _hend(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        self._headers[name] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _hdone(self) -> None:
        length = self._headers.get("content-length", "").strip()
        self._want = int(length) if length.isdigit() and len(length) < 12 else None

    def _limit(self) -> int:
        part = Part(self._headers, b"")
        return self._limits.max_picture_bytes if part.is_picture else self._limits.max_part_bytes

    def _pdata(self, data: bytes, start: int, end: int) -> None:
        if self._delivered or self._dropped or self._error is not None:
            return  # trailing CRLFs after a declared length, or a part being skipped
        self._data += data[start:end]
        if len(self._data) > self._limit():
            if Part(self._headers, b"").is_picture:
                # An oversized picture is skipped, not buffered; the rest of the body goes on.
                self._dropped = True
                self._data = bytearray()
                return
            self._fail(PartLimitError(f"a part is over {self._limits.max_part_bytes} bytes"))
            return
        if self._want is not None and len(self._data) >= self._want:
            self._deliver(bytes(self._data[: self._want]))

    def _deliver(self, data: bytes, dropped: bool = False) -> None:
        self._delivered = True
        try:
            self._on_part(Part(dict(self._headers), data, dropped))
        except CodecError as exc:
            self._fail(exc)

    def _pend(self) -> None:
        if self._error is not None or self._delivered:
            return
        if self._dropped:
            self._deliver(b"", dropped=True)
            return
        data = bytes(self._data)
        # Streams separate blocks with blank lines the body does not include.
        self._deliver(data[: self._want] if self._want is not None else data)

    def _end(self) -> None:
        self.ended = True
