"""GPS as a time source and clock-jump detection; pure (the caller passes every clock reading).

Interface:
    best_time(os_wall_ms, os_synced, fix_utc_ms, fix_mono_ms, now_mono_ms, ...) -> TimeChoice
        wall_ms/source/time_ok for the contract's ts/ts_src/time_ok (§3): the OS clock when it is
        synchronised (source = os_source, "ntp" unless told "rtc"), else GPS time carried
        forward on the monotonic clock when a valid fix is recent (source "gps"), else the
        OS clock with source "none" and time_ok False.
    GpsClock(jump_threshold_ms=5000, ...)
        .on_fix(fix)                                   remember the latest valid fix
        .check(os_wall_ms, os_synced, now_mono_ms) -> TimeCheck(choice, jump_ms)
        jump_ms is not None exactly once per jump: the caller turns it into the notice
        {"type": "clock_jump", "delta_ms": jump_ms} (delta = GPS time - OS wall time).

Hysteresis: after a jump is reported, nothing more is reported while the offset stays within
`threshold` of the reported one; the detector re-arms when the offset falls below half the
threshold (the clock was corrected), and a further move of more than `threshold` from the
reported offset is a new jump. GPS times before `not_before_ms` (default 2024-01-01) are not
believed: receivers hit by the GPS week rollover report valid fixes 19.7 years in the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from firmware_bridge.types import Fix

TimeSource = Literal["gps", "ntp", "rtc", "none"]
DEFAULT_JUMP_THRESHOLD_MS = 5_000
DEFAULT_MAX_FIX_AGE_MS = 300_000  # CLOCK_BOOTTIME drifts well under 0.1 s in five minutes
NOT_BEFORE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class TimeChoice:
    """The best wall clock now: milliseconds, contract ts_src, and whether it is known right."""

    wall_ms: int
    source: TimeSource
    time_ok: bool


@dataclass(frozen=True, slots=True)
class TimeCheck:
    """A TimeChoice plus a clock jump (GPS - OS, ms) to report, or None."""

    choice: TimeChoice
    jump_ms: int | None


def gps_now_ms(
    fix_utc_ms: int | None,
    fix_mono_ms: int | None,
    now_mono_ms: int,
    *,
    max_age_ms: int = DEFAULT_MAX_FIX_AGE_MS,
    not_before_ms: int = NOT_BEFORE_MS,
) -> int | None:
    """GPS time now, carried forward from the fix on the monotonic clock; None if unusable."""
    if fix_utc_ms is None or fix_mono_ms is None or fix_utc_ms < not_before_ms:
        return None
    age = now_mono_ms - fix_mono_ms
    if age < 0 or age > max_age_ms:
        return None
    return fix_utc_ms + age


def best_time(
    os_wall_ms: int,
    os_synced: bool,
    fix_utc_ms: int | None,
    fix_mono_ms: int | None,
    now_mono_ms: int,
    *,
    os_source: Literal["ntp", "rtc"] = "ntp",
    max_age_ms: int = DEFAULT_MAX_FIX_AGE_MS,
    not_before_ms: int = NOT_BEFORE_MS,
) -> TimeChoice:
    """Pick the wall time: synced OS clock, else recent GPS time, else unsynced OS clock."""
    if os_synced:
        return TimeChoice(os_wall_ms, os_source, True)
    gps = gps_now_ms(
        fix_utc_ms, fix_mono_ms, now_mono_ms, max_age_ms=max_age_ms, not_before_ms=not_before_ms
    )
    if gps is not None:
        return TimeChoice(gps, "gps", True)
    return TimeChoice(os_wall_ms, "none", False)


class GpsClock:
    """Holds the latest valid fix time and reports OS-vs-GPS clock jumps once each."""

    def __init__(
        self,
        *,
        jump_threshold_ms: int = DEFAULT_JUMP_THRESHOLD_MS,
        max_fix_age_ms: int = DEFAULT_MAX_FIX_AGE_MS,
        not_before_ms: int = NOT_BEFORE_MS,
        os_source: Literal["ntp", "rtc"] = "ntp",
    ) -> None:
        self._threshold = max(1, jump_threshold_ms)
        self._max_age = max_fix_age_ms
        self._not_before = not_before_ms
        self._os_source: Literal["ntp", "rtc"] = os_source
        self._fix_utc_ms: int | None = None
        self._fix_mono_ms: int | None = None
        self._reported: int | None = None  # offset of the last reported jump while armed off

    def on_fix(self, fix: Fix) -> None:
        """Remember a valid fix that has a date and a receive time; ignore anything else."""
        if fix.valid and fix.utc_ms is not None and fix.mono_ms is not None:
            self._fix_utc_ms = fix.utc_ms
            self._fix_mono_ms = fix.mono_ms

    def check(self, os_wall_ms: int, os_synced: bool, now_mono_ms: int) -> TimeCheck:
        """Best time now, and the jump to report (once) when OS and GPS time disagree."""
        choice = best_time(
            os_wall_ms,
            os_synced,
            self._fix_utc_ms,
            self._fix_mono_ms,
            now_mono_ms,
            os_source=self._os_source,
            max_age_ms=self._max_age,
            not_before_ms=self._not_before,
        )
        gps = gps_now_ms(
            self._fix_utc_ms,
            self._fix_mono_ms,
            now_mono_ms,
            max_age_ms=self._max_age,
            not_before_ms=self._not_before,
        )
        if gps is None:
            return TimeCheck(choice, None)
        return TimeCheck(choice, self._jump(gps - os_wall_ms))

    def _jump(self, offset: int) -> int | None:
        reported = self._reported
        if reported is None:
            if abs(offset) > self._threshold:
                self._reported = offset
                return offset
            return None
        if abs(offset) < self._threshold // 2:
            self._reported = None  # clocks agree again: re-arm
            return None
        if abs(offset - reported) > self._threshold:
            self._reported = offset
            return offset
        return None
