"""The board's own readings: free disk, SoC temperature, battery (None where it cannot tell)."""

from __future__ import annotations

import os
from pathlib import Path


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
