"""Every real capture in ../shared/data/nmea through codec + merger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from firmware_bridge.geo import distance_m
from firmware_bridge.types import Fix
from tests.kits.fb import NMEA_DIR, captures, decode_fixes, require

CAPTURES = captures()


def _load(name: str) -> list[Fix]:
    path = require(NMEA_DIR / name)
    return decode_fixes(path.read_bytes())[0]


def _utc(fix: Fix) -> dt.datetime:
    assert fix.utc_ms is not None
    return dt.datetime.fromtimestamp(fix.utc_ms / 1000, dt.UTC)


def test_capture_folder_is_there() -> None:
    require(NMEA_DIR)
    assert len(CAPTURES) == 13


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
def test_every_capture_decodes_and_chunking_does_not_matter(path: Path, chunk: int | None) -> None:
    whole, dec = decode_fixes(path.read_bytes())
    assert dec.stats()["sentences"] > 0
    if chunk is not None:
        chunked, dec2 = decode_fixes(path.read_bytes(), chunk)
        strip = [(f.valid, f.utc_ms, f.lat, f.lon, f.invalid_reason) for f in whole]
        assert [(f.valid, f.utc_ms, f.lat, f.lon, f.invalid_reason) for f in chunked] == strip
        assert dec2.stats() == dec.stats()
    for fix in whole:
        if fix.valid:
            assert fix.lat is not None and fix.lon is not None and fix.quality != 0
        else:
            assert fix.lat is None and fix.invalid_reason


def test_zed_f9p_first_fix_matches_readme() -> None:
    fixes = _load("gpsd/ublox-zed-f9p-nmea.log")
    first = next(f for f in fixes if f.valid)
    assert _utc(first) == dt.datetime(2019, 4, 12, 0, 39, 56, tzinfo=dt.UTC)
    assert first.lat == pytest.approx(-45.8775672, abs=1e-7)
    assert first.lon == pytest.approx(170.5001113, abs=1e-7)
    assert first.acc_m == pytest.approx(4.19, abs=0.01)  # from GST 2.3 / 3.5 m
    assert len(fixes) == 29 and all(f.valid for f in fixes)  # one fix per epoch, 4 talkers


def test_haicom_no_fix_start_with_filled_lat_lon_then_first_fix_matches_readme() -> None:
    fixes = _load("gpsd/haicom-305N.log")
    first_valid = next(i for i, f in enumerate(fixes) if f.valid)
    assert first_valid >= 5 and not any(f.valid for f in fixes[:first_valid])
    first = fixes[first_valid]
    assert _utc(first) == dt.datetime(2007, 4, 8, 9, 53, 4, 802000, tzinfo=dt.UTC)
    assert first.lat == pytest.approx(-27.2108667, abs=1e-7)
    assert first.lon == pytest.approx(153.0523283, abs=1e-7)
    walk = [f for f in fixes if f.valid and f.lat is not None and f.lon is not None]
    assert max(distance_m(first.lat, first.lon, f.lat, f.lon) for f in walk) < 80  # a ~43 m walk


@pytest.mark.parametrize(
    "name",
    ["gpsd/eXplorist110.log", "pynmeagps/pygpsdata-nmeastartup.nmea"],
)
def test_no_fix_captures_yield_no_fix(name: str) -> None:
    fixes = _load(name)
    assert fixes and not any(f.valid for f in fixes)


def test_quectel_cold_start_has_no_fix_until_the_receiver_says_so() -> None:
    fixes = _load("gpsd/quectel-eg25-g.log")
    first_valid = next(i for i, f in enumerate(fixes) if f.valid)
    assert first_valid > 10
    assert {f.invalid_reason for f in fixes[:first_valid]} == {"no_fix"}


def test_garmin_dead_reckoning_and_indoor_loss_are_not_fixes() -> None:
    fixes = _load("gpsd/garmin-10x.log")
    reasons = [f.invalid_reason for f in fixes]
    assert reasons[3] == "dead_reckoning"  # 16:50:10, quality 6 with lat/lon filled
    assert reasons[4:8] == ["no_fix"] * 4
    assert sum(f.valid for f in fixes) == 9


def test_corrupted_coldboot_capture_yields_no_false_fix() -> None:
    fixes = _load("gpsd/gp-320fw-2019-04-07-coldboot.log")
    valid = [f for f in fixes if f.valid]
    # Only the two epochs before the reboot are real fixes, at the spoofed position.
    assert len(valid) == 2
    for f in valid:
        assert f.lat is not None and f.lon is not None
        assert distance_m(f.lat, f.lon, 48.1499883, 11.5846633) < 10
    dated = [f for f in valid if f.utc_ms is not None]
    assert [_utc(f).date() for f in dated] == [dt.date(2019, 4, 7)]
    last_valid = max(i for i, f in enumerate(fixes) if f.valid)
    assert last_valid < 3  # nothing after the $PLCS reboot (void RMC, 0,0, 1999/2006 dates)


def test_corrupted_capture_counts_what_it_dropped() -> None:
    path = require(NMEA_DIR / "gpsd/gp-320fw-2019-04-07-coldboot.log")
    _, dec = decode_fixes(path.read_bytes())
    drops = dec.drops
    assert drops["bad_checksum"] > 10 and drops["bad_char"] >= 1 and drops["truncated"] >= 1


def test_triton_run_together_gga_is_dropped_and_the_rest_kept() -> None:
    path = require(NMEA_DIR / "gpsd/triton400.log")
    fixes, dec = decode_fixes(path.read_bytes())
    assert dec.drops["truncated"] == 1
    assert len(fixes) == 4 and all(f.valid for f in fixes)


def test_sirf_gga_twice_per_epoch_is_one_fix_per_epoch() -> None:
    fixes = _load("gpsd/sirfstarv-nmea.log")
    assert len(fixes) == 59 and len({f.utc_ms for f in fixes}) == 59


def test_pynmeagps_bad_checksum_line_is_dropped() -> None:
    path = require(NMEA_DIR / "pynmeagps/pygpsdata-nmeabadck.nmea")
    fixes, dec = decode_fixes(path.read_bytes())
    assert dec.drops["bad_checksum"] == 1 and len(fixes) == 1


def test_pynmeagps_catalogue_with_inconsistent_rmc_is_not_a_fix() -> None:
    # Its GNRMC says 102 deg W while GGA, GNS and GLL say 2 deg W: refuse the epoch.
    fixes = _load("pynmeagps/pygpsdata-nmea4.nmea")
    assert [f.invalid_reason for f in fixes] == ["gga_rmc_mismatch"]
