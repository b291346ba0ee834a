"""Time for the §3 envelope: the pure choice of source, and a thin reader of the OS clocks."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sync.envelope import TimeStamp

# A GPS time is trusted for this long after the fix that carried it; then only the OS counts.
GPS_TIME_MAX_AGE_MS = 10 * 60 * 1000


@dataclass(frozen=True, slots=True)
class OsTime:
    """One reading of the OS clocks."""

    wall_ms: int
    mono_ms: int  # CLOCK_BOOTTIME
    ntp_synced: bool
    has_rtc: bool


@dataclass(frozen=True, slots=True)
class GpsTime:
    """UTC time of a valid fix and the CLOCK_BOOTTIME ms at which it was received."""

    utc_ms: int
    mono_ms: int


def choose(os_time: OsTime, gps: GpsTime | None, boot: str) -> TimeStamp:
    """Pick the best wall time per §3: NTP, then a recent GPS fix, then RTC, else none."""
    if os_time.ntp_synced:
        return TimeStamp(os_time.wall_ms, "ntp", True, boot, os_time.mono_ms)
    if gps is not None and 0 <= os_time.mono_ms - gps.mono_ms <= GPS_TIME_MAX_AGE_MS:
        now = gps.utc_ms + (os_time.mono_ms - gps.mono_ms)
        return TimeStamp(now, "gps", True, boot, os_time.mono_ms)
    src = "rtc" if os_time.has_rtc else "none"
    return TimeStamp(os_time.wall_ms, src, False, boot, os_time.mono_ms)


class _Timex(ctypes.Structure):
    # Only `modes` must be zero (read-only query); the rest is room for the kernel to fill.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 252)]


class KernelSync:
    """Asks the kernel (adjtimex, read-only) whether NTP has synchronised the clock."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True) if name else None

    def __call__(self) -> bool:
        """True unless the kernel reports TIME_ERROR (5), i.e. unsynchronised."""
        if self._libc is None:
            return False
        tx = _Timex()
        state = int(self._libc.adjtimex(ctypes.byref(tx)))
        return 0 <= state < 5


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """The OS boot id; a fresh random one where the OS has none (kept for this process)."""
    try:
        return path.read_text().strip()
    except OSError:
        return str(uuid.uuid4())


class SystemClock:
    """Reads the OS clocks; GPS time is fed in by the GPS source."""

    def __init__(
        self,
        *,
        boot: str | None = None,
        synced: Callable[[], bool] | None = None,
        has_rtc: bool | None = None,
    ) -> None:
        self.boot = boot if boot is not None else read_boot_id()
        self._synced = synced if synced is not None else KernelSync()
        self._has_rtc = os.path.exists("/dev/rtc0") if has_rtc is None else has_rtc
        self._gps: GpsTime | None = None

    def mono_ms(self) -> int:
        """CLOCK_BOOTTIME in ms."""
        return int(time.clock_gettime(time.CLOCK_BOOTTIME) * 1000)

    def os_time(self) -> OsTime:
        """Read the OS clocks once."""
        return OsTime(int(time.time() * 1000), self.mono_ms(), self._synced(), self._has_rtc)

    def set_gps_time(self, utc_ms: int, mono_ms: int) -> None:
        """Feed the UTC time of a valid fix received at `mono_ms`."""
        self._gps = GpsTime(utc_ms, mono_ms)

    def stamp(self) -> TimeStamp:
        """The §3 time fields for a message created now."""
        return choose(self.os_time(), self._gps, self.boot)
