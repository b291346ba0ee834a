"""The `[metrics]` and `[logging]` config sections (cheap imports: read on every start)."""

from __future__ import annotations

from ipaddress import ip_address

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MetricsConfig(BaseModel):
    """`[metrics]`: the local Prometheus endpoint (off by default, loopback by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)  # see config.model

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
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)

    json_lines: bool = Field(default=False, alias="json")
