"""Config models for camera event intake: multipart push limits and per-camera event streams."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MultipartConfig(_Model):
    """`[alarm_http.multipart]`: pushes with pictures (multipart/form-data or multipart/mixed)."""

    max_body_bytes: int = Field(default=4 * 1048576, ge=1024, le=32 * 1048576)
    max_parts: int = Field(default=8, ge=1, le=64)
    max_part_bytes: int = Field(default=65536, ge=256, le=1048576)
    max_picture_bytes: int = Field(default=1048576, ge=1024, le=16 * 1048576)
    # The whole body must arrive within this; each read also waits at most read_timeout_s.
    body_timeout_s: float = Field(default=30.0, gt=0, le=600)


class StreamBackoff(_Model):
    """Reconnect delays: full jitter between initial_s/2 and initial_s doubling up to max_s."""

    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=60.0, gt=0)


class CameraEventsConfig(_Model):
    """`[cameras.events]`: subscribe to the camera's own event stream (long-lived HTTP GET)."""

    # alert_stream: multipart/mixed EventNotificationAlert XML blocks (e.g. ISAPI alertStream);
    # event_codes: multipart/x-mixed-replace "Code=...;action=Start|Stop;index=..." blocks.
    kind: Literal["alert_stream", "event_codes"]
    url: str
    auth: Literal["digest", "basic"] = "digest"
    username: str | None = Field(default=None, min_length=1, max_length=64)
    password_file: Path | None = None
    verify_tls: bool = True
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # No byte (event or heartbeat) for this long means the stream is dead: reconnect.
    idle_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # event_codes only: a Start without its Stop ends after this long (Stops can be lost).
    hold_s: float = Field(default=300.0, gt=0)
    max_part_bytes: int = Field(default=65536, ge=256, le=1048576)
    max_picture_bytes: int = Field(default=1048576, ge=1024, le=16 * 1048576)
    backoff: StreamBackoff = StreamBackoff()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("no credentials in the URL; use username and password_file")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> CameraEventsConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        return self

    def load_password(self, base_dir: Path | None = None) -> str | None:
        """The password from password_file (None without credentials); ConfigError if unusable."""
        if self.password_file is None:
            return None
        return read_secret(self.password_file, base_dir, "events.password_file")


def read_secret(path: Path, base_dir: Path | None, key: str) -> str:
    """A secret from a file (relative to base_dir), stripped; ConfigError naming `key`."""
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([(key, f"cannot read {path}: {exc}")]) from exc
    if not secret:
        raise ConfigError([(key, f"{path} is empty")])
    return secret
