"""The `[metrics]` and `[logging]` config sections and the JSON log line format (cheap imports)."""

from __future__ import annotations

import json
import logging
import sys
import time
from ipaddress import ip_address

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MetricsConfig(BaseModel):
    """`[metrics]`: the local Prometheus endpoint (off by default, loopback by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=1, le=65535)

    @field_validator("host")
    @classmethod
    def _an_address(cls, v: str) -> str:
        ip_address(v)  # an address, not a name: what the endpoint binds to must be explicit
        return v


class LoggingConfig(BaseModel):
    """`[logging]`: `json = true` writes one JSON object per line for log shippers."""

    # By name too: a config dumped without aliases (ops tooling) must parse again.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    json_lines: bool = Field(default=False, alias="json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, device id (and exc)."""

    def __init__(self, device_id: str | None = None) -> None:
        super().__init__()
        self.device_id = device_id

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "device": self.device_id,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


# Log record times in UTC, as the "Z" says.
JsonFormatter.converter = time.gmtime


def use_json_logs(device_id: str | None) -> None:
    """Switch the root logger's output to JSON lines on stdout (replacing its handlers)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(device_id))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
