"""Time for the §3 envelope: reads the OS clocks; the choice of source is gpstime.best_time."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from firmware_bridge.aio import boottime_ms
from firmware_bridge.gpstime import GpsClock, best_time
from firmware_bridge.types import Fix
from sync.envelope import TimeStamp


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
    """Reads the OS clocks; valid fixes feed GPS time in (used while NTP is not synced)."""

    def __init__(
        self,
        *,
        boot: str | None = None,
        synced: Callable[[], bool] | None = None,
        has_rtc: bool | None = None,
        wall_ms: Callable[[], int] | None = None,
        mono_ms: Callable[[], int] | None = None,
    ) -> None:
        self.boot = boot if boot is not None else read_boot_id()
        self._synced = synced if synced is not None else KernelSync()
        self._has_rtc = os.path.exists("/dev/rtc0") if has_rtc is None else has_rtc
        self._wall = wall_ms or (lambda: int(time.time() * 1000))
        self._mono = mono_ms or boottime_ms
        self.gps = GpsClock()
        self._fix: Fix | None = None
        self.jump_listeners: list[Callable[[int], None]] = []

    def mono_ms(self) -> int:
        """CLOCK_BOOTTIME in ms."""
        return self._mono()

    def on_fix(self, fix: Fix) -> None:
        """Feed a fix; valid ones with a date become the GPS time source.

        A disagreement with the OS clock beyond the threshold is told once to `jump_listeners`.
        """
        if fix.valid and fix.utc_ms is not None and fix.mono_ms is not None:
            self._fix = fix
            self.gps.on_fix(fix)
            jump = self.clock_jump()
            if jump is not None:
                for listener in self.jump_listeners:
                    listener(jump)

    def clock_jump(self) -> int | None:
        """GPS minus OS time in ms when they disagree by more than the threshold (once a jump)."""
        return self.gps.check(self._wall(), self._synced(), self._mono()).jump_ms

    def stamp(self) -> TimeStamp:
        """The §3 time fields for a message created now."""
        fix = self._fix
        now_mono = self._mono()
        choice = best_time(
            self._wall(),
            self._synced(),
            fix.utc_ms if fix else None,
            fix.mono_ms if fix else None,
            now_mono,
        )
        src = "rtc" if choice.source == "none" and self._has_rtc else choice.source
        return TimeStamp(choice.wall_ms, src, choice.time_ok, self.boot, now_mono)
