"""GPS as the time source and clock-jump detection with hysteresis."""

from __future__ import annotations

from firmware_bridge.gpstime import GpsClock, TimeChoice, best_time, gps_now_ms
from firmware_bridge.types import Fix

T0 = 1_764_234_902_123  # 2025-11-27, after the not-before floor


def fix_at(utc_ms: int | None, mono_ms: int | None, valid: bool = True) -> Fix:
    return Fix(valid=valid, utc_ms=utc_ms, lat=1.0, lon=2.0, mono_ms=mono_ms)


def test_synced_os_clock_wins() -> None:
    assert best_time(T0, True, T0 + 9000, 100, 200) == TimeChoice(T0, "ntp", True)
    assert best_time(T0, True, None, None, 200, os_source="rtc").source == "rtc"


def test_unsynced_os_clock_uses_recent_gps_time_carried_on_monotonic() -> None:
    choice = best_time(1_000, False, T0, 5_000, 7_500)
    assert choice == TimeChoice(T0 + 2_500, "gps", True)


def test_no_gps_and_no_sync_means_time_not_ok() -> None:
    assert best_time(1_000, False, None, None, 7_500) == TimeChoice(1_000, "none", False)


def test_stale_or_future_or_pre_rollover_fix_is_not_a_time_source() -> None:
    assert gps_now_ms(T0, 0, 10_000_000) is None  # older than max age
    assert gps_now_ms(T0, 5_000, 4_000) is None  # received "after" now: a mono clock mix-up
    assert gps_now_ms(1_166_313_588_000, 0, 10) is None  # 2006: GPS week rollover victim


def test_clock_ignores_invalid_or_undated_fixes() -> None:
    clock = GpsClock()
    clock.on_fix(fix_at(T0, 100, valid=False))
    clock.on_fix(fix_at(None, 100))
    assert clock.check(T0 + 60_000, False, 200).choice.source == "none"


def test_jump_is_reported_once_with_hysteresis_then_rearmed() -> None:
    clock = GpsClock(jump_threshold_ms=5_000)
    clock.on_fix(fix_at(T0, 0))
    # OS wall clock 60 s behind GPS time.
    first = clock.check(T0 - 60_000, False, 0)
    assert first.jump_ms == 60_000 and first.choice.source == "gps"
    # Same disagreement on later checks (and small wobble): no new report.
    for k in range(1, 5):
        clock.on_fix(fix_at(T0 + k * 1000, k * 1000))
        assert clock.check(T0 - 60_000 + k * 1000 + 300 * (k % 2), False, k * 1000).jump_ms is None
    # The OS clock is corrected: agreement re-arms the detector, nothing reported.
    assert clock.check(T0 + 5_000, True, 5_000).jump_ms is None
    # A new step of the OS clock is a new jump, reported once.
    assert clock.check(T0 + 6_000 + 3_600_000, True, 6_000).jump_ms == -3_600_000
    assert clock.check(T0 + 7_000 + 3_600_000, True, 7_000).jump_ms is None


def test_a_second_different_jump_without_recovery_is_reported() -> None:
    clock = GpsClock(jump_threshold_ms=5_000)
    clock.on_fix(fix_at(T0, 0))
    assert clock.check(T0 - 20_000, False, 0).jump_ms == 20_000
    assert clock.check(T0 - 40_000, False, 0).jump_ms == 40_000


def test_below_threshold_is_not_a_jump() -> None:
    clock = GpsClock(jump_threshold_ms=5_000)
    clock.on_fix(fix_at(T0, 0))
    assert clock.check(T0 - 4_999, True, 0).jump_ms is None
