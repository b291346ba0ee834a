"""The §8 status body (the board's own readings come from `firmware_bridge.board`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def status_body(
    *,
    ts: int,
    mode: str,
    config_ver: int | None,
    uptime_s: int,
    outbox: Mapping[str, Any],
    gps: Mapping[str, Any] | None,
    disk_free: int | None,
    cpu_temp: float | None,
    batt: int | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the §8 body; `extra` adds device-specific sections (serial counters, cameras)."""
    body: dict[str, Any] = {
        "v": 1,
        "ts": ts,
        "mode": mode,
        "config_ver": config_ver,
        "uptime_s": uptime_s,
        "outbox": dict(outbox),
        "gps": dict(gps) if gps is not None else {"fix": None, "sats": None, "acc_m": None},
        "disk_free_mb": disk_free,
        "cpu_temp_c": cpu_temp,
        "batt_pct": batt,
    }
    if extra:
        body.update(extra)
    return body
