"""Is the wall clock right: NTP sync (timedatectl, timesyncd flag, adjtimex) or GPS time."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from agent.doctor.finding import Finding

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def clock_verdict(
    synced: bool | None, gps_time: bool | None, gps_configured: bool, gps_held: bool = False
) -> Finding:
    """Synced: pass. Not synced: warn while GPS time can stand in (or cannot be looked at: the
    running agent holds the GPS port), fail otherwise."""
    if synced:
        return Finding("clock", "pass", "clock_synced")
    if gps_time:
        return Finding("clock", "warn", "clock_gps")
    if gps_held:
        return Finding("clock", "warn", "clock_gps_agent")
    if gps_configured:
        return Finding("clock", "fail", "clock_unsynced_gps_silent")
    return Finding("clock", "fail", "clock_unsynced")


def ntp_synced() -> bool | None:
    """timedatectl's NTPSynchronized, else timesyncd's flag file, else the kernel (adjtimex)."""
    exe = shutil.which("timedatectl")
    if exe is not None:
        try:
            out = subprocess.run(
                [exe, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0 and out.stdout.strip() in ("yes", "no"):
                return out.stdout.strip() == "yes"
        except (OSError, subprocess.TimeoutExpired):
            pass  # no systemd bus here (a container): try the next source
    if TIMESYNCD_FLAG.exists():
        return True
    from agent.clock import KernelSync

    return KernelSync()()


def clock_finding(
    gps_time: bool | None,
    gps_configured: bool,
    synced: Callable[[], bool | None] = ntp_synced,
    gps_held: bool = False,
) -> Finding:
    """The clock check; `synced` is injectable (tests)."""
    return clock_verdict(synced(), gps_time, gps_configured, gps_held)
