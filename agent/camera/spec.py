"""What names a camera source, for both roles' config models and for `open_source` (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

_SOURCE = re.compile(r"^(picamera2(:\d+)?|v4l2:(\d+|/dev/\S+)|(rtsps?|https?)://\S+|file:.+)$")


def check_source(value: str) -> str:
    """A camera source as the sources module opens it, or ValueError naming the forms."""
    if not _SOURCE.match(value):
        raise ValueError(
            'expected "picamera2", "v4l2:<n or /dev/path>", "rtsp://…", "http(s)://…" '
            'or "file:<video file or image folder>"'
        )
    return value


class SourceSettings(Protocol):
    """The settings `open_source` reads (a gateway's `[[cameras]]` entry has them all)."""

    @property
    def source(self) -> str: ...
    @property
    def width(self) -> int | None: ...
    @property
    def height(self) -> int | None: ...
    @property
    def fps(self) -> float: ...
    @property
    def stall_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A source named outside a `[[cameras]]` entry (the patrol camera, the on-site check)."""

    source: str
    width: int | None = None
    height: int | None = None
    fps: float = 5.0
    stall_s: float = 10.0

    def __post_init__(self) -> None:
        check_source(self.source)
