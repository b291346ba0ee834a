"""The §8 status body and the few OS readings it needs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def disk_free_mb(path: Path) -> int | None:
    """Free space for unprivileged writers on the file system holding `path`."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize // (1024 * 1024)


def cpu_temp_c(path: Path = Path("/sys/class/thermal/thermal_zone0/temp")) -> float | None:
    """SoC temperature in °C where the kernel exposes it."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def batt_pct(root: Path = Path("/sys/class/power_supply")) -> int | None:
    """Battery charge where a power-supply driver reports one."""
    try:
        for supply in sorted(root.iterdir()):
            cap = supply / "capacity"
            if cap.exists():
                return int(cap.read_text().strip())
    except (OSError, ValueError):
        return None
    return None


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
