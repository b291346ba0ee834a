"""Epoch merger and fix validity."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.fix import EpochMerger
from firmware_bridge.geo import distance_m
from firmware_bridge.nmea import NmeaDecoder
from firmware_bridge.types import Fix
from tests.kits.fb import nmea

LAT, NS, LON, EW = "4404.14063", "N", "12118.85478", "W"  # 44.0690105, -121.3142463


def gga(
    t: str,
    q: str = "1",
    lat: str = LAT,
    lon: str = LON,
    talker: str = "GP",
    sats: str = "09",
    hdop: str = "0.9",
    alt: str = "1147.2",
) -> bytes:
    ns, ew = (NS, EW) if lat else ("", "")
    return nmea(f"{talker}GGA", t, lat, ns, lon, ew, q, sats, hdop, alt, "M", "-21.3", "M", "", "")


def rmc(
    t: str,
    status: str = "A",
    mode: str = "A",
    date: str = "180315",
    lat: str = LAT,
    lon: str = LON,
    talker: str = "GP",
) -> bytes:
    ns, ew = (NS, EW) if lat else ("", "")
    return nmea(f"{talker}RMC", t, status, lat, ns, lon, ew, "1.944", "90.0", date, "", "", mode)


def gsa(fix_type: str = "3") -> bytes:
    return nmea(
        "GPGSA",
        "A",
        fix_type,
        "01",
        "11",
        "31",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "1.56",
        "0.91",
        "1.27",
    )


def gst(t: str, lat_sd: str = "1.5", lon_sd: str = "2.0") -> bytes:
    return nmea("GNGST", t, "38", "3.0", "1.0", "89", lat_sd, lon_sd, "3.1")


def run(*lines: bytes, merger: EpochMerger | None = None) -> list[Fix]:
    m = merger or EpochMerger()
    out: list[Fix] = []
    for s in NmeaDecoder().feed(b"".join(lines)):
        out += m.push(s, 1000)
    last = m.flush()
    return out + ([last] if last else [])


def test_gga_rmc_gsa_merge_into_one_valid_fix() -> None:
    [fix] = run(gga("171926.00"), gsa(), rmc("171926.00"))
    assert fix.valid and fix.invalid_reason is None
    assert fix.lat == pytest.approx(44.0690105) and fix.lon == pytest.approx(-121.3142463)
    assert fix.alt_m == 1147.2 and fix.sats == 9 and fix.hdop == 0.9 and fix.quality == 1
    assert fix.fix == "3d"
    assert fix.utc_ms == 1426699166000  # 2015-03-18T17:19:26Z
    assert fix.speed_mps == pytest.approx(1.0, abs=1e-3) and fix.course_deg == 90.0
    assert fix.acc_m == pytest.approx(0.9 * 5.0)  # documented HDOP factor
    assert fix.mono_ms == 1000


def test_acc_from_gst_when_sent() -> None:
    [fix] = run(gga("171926.00"), rmc("171926.00"), gst("171926.00", "1.5", "2.0"))
    assert fix.acc_m == pytest.approx(2.5)


def test_two_dimensional_fix_from_gsa() -> None:
    [fix] = run(gga("171926.00"), gsa("2"), rmc("171926.00"))
    assert fix.valid and fix.fix == "2d"


@pytest.mark.parametrize(
    ("quality", "reason"),
    [
        ("0", "no_fix"),
        ("6", "dead_reckoning"),
        ("7", "manual"),
        ("8", "simulator"),
        ("", "no_quality"),
        ("9", "bad_quality"),
    ],
)
def test_gga_quality_that_is_not_a_fix(quality: str, reason: str) -> None:
    [fix] = run(gga("171926.00", q=quality), rmc("171926.00"))
    assert not fix.valid and fix.invalid_reason == reason
    assert fix.lat is None and fix.lon is None and fix.acc_m is None  # filled fields not passed on


@pytest.mark.parametrize(
    ("status", "mode", "reason"),
    [
        ("V", "A", "rmc_void"),
        ("A", "E", "dead_reckoning"),
        ("A", "S", "simulator"),
        ("A", "M", "manual"),
        ("A", "N", "no_fix"),
        ("", "", "rmc_void"),
    ],
)
def test_rmc_status_and_mode(status: str, mode: str, reason: str) -> None:
    [fix] = run(gga("171926.00"), rmc("171926.00", status=status, mode=mode))
    assert not fix.valid and fix.invalid_reason == reason


def test_demo_mode_receiver_is_never_a_fix() -> None:
    # A receiver in demo/simulator mode: quality 8 and RMC mode S, with plausible coordinates.
    fixes = run(
        *(gga(f"1200{s:02d}.00", q="8") + rmc(f"1200{s:02d}.00", mode="S") for s in range(5))
    )
    assert len(fixes) == 5 and not any(f.valid for f in fixes)


@pytest.mark.parametrize(
    ("lat", "lon", "reason"),
    [
        ("", "", "no_position"),
        ("9100.0000", LON, "no_position"),
        ("4460.0000", LON, "no_position"),
        ("0000.0000", "00000.0000", "null_island"),
    ],
)
def test_empty_or_impossible_position(lat: str, lon: str, reason: str) -> None:
    [fix] = run(gga("171926.00", lat=lat, lon=lon), rmc("171926.00", lat=lat, lon=lon))
    assert not fix.valid and fix.invalid_reason == reason


def test_gga_and_rmc_disagreeing_on_position() -> None:
    [fix] = run(gga("171926.00"), rmc("171926.00", lon="12218.85478"))
    assert not fix.valid and fix.invalid_reason == "gga_rmc_mismatch"


def test_time_running_backwards_is_never_valid_then_resyncs() -> None:
    m = EpochMerger(backwards_resync_epochs=3)
    first = run(gga("171930.00") + rmc("171930.00"), merger=m)
    assert first[0].valid
    back = run(*(gga(f"1719{s:02d}.00") + rmc(f"1719{s:02d}.00") for s in (20, 21)), merger=m)
    assert [f.invalid_reason for f in back] == ["time_backwards", "time_backwards"]
    # A steady new timeline is believed after `backwards_resync_epochs` epochs.
    assert run(gga("171922.00") + rmc("171922.00"), merger=m)[0].valid


def test_date_rollback_alone_is_backwards() -> None:
    m = EpochMerger()
    assert run(gga("000010.00") + rmc("000010.00", date="070419"), merger=m)[0].valid
    [fix] = run(gga("000011.00") + rmc("000011.00", date="220899"), merger=m)
    assert fix.invalid_reason == "time_backwards"


def test_duplicate_gga_from_two_talkers_is_one_epoch_and_gn_wins() -> None:
    fixes = run(
        gga("020935.000", sats="08"),
        gga("020935.000", talker="GN", sats="10"),
        rmc("020935.000", talker="GN"),
        gga("020936.000"),
        rmc("020936.000"),
    )
    assert len(fixes) == 2 and fixes[0].sats == 10


def test_gga_and_rmc_stamped_apart_within_a_second_are_one_epoch() -> None:
    # Magellan: GGA at .08 and RMC at .76 of the same second.
    fixes = run(gga("014413.08"), rmc("014413.76"), gga("014414.08"), rmc("014414.76"))
    assert len(fixes) == 2 and all(f.valid for f in fixes)
    assert fixes[0].utc_ms is not None and fixes[0].utc_ms % 1000 == 760


def test_ten_hertz_epochs_are_separate() -> None:
    fixes = run(*(gga(f"120000.{d}0") + rmc(f"120000.{d}0") for d in range(5)))
    assert [f.utc_ms % 1000 for f in fixes if f.utc_ms] == [0, 100, 200, 300, 400]


def test_epoch_closes_as_soon_as_its_learned_sentences_arrived() -> None:
    m = EpochMerger()
    dec = NmeaDecoder()
    out: list[Fix] = []
    for line in (gga("120000.00"), rmc("120000.00"), gga("120001.00")):
        for s in dec.feed(line):
            out += m.push(s)
    assert len(out) == 1  # the first epoch closed by the next one
    for s in dec.feed(rmc("120001.00")):
        out += m.push(s)
    assert len(out) == 2  # second epoch closed at its RMC, without waiting for the third


def test_late_sentence_is_counted_and_waited_for_next_time() -> None:
    m = EpochMerger()
    fixes = run(
        gga("120000.00"),
        rmc("120000.00"),
        gga("120001.00"),
        rmc("120001.00"),
        gst("120001.00"),
        gga("120002.00"),
        rmc("120002.00"),
        gst("120002.00"),
        merger=m,
    )
    assert m.stats()["late"] == 1
    assert fixes[-1].acc_m == pytest.approx(2.5)  # third epoch waited for its GST


def test_fix_without_date_is_valid_but_has_no_utc() -> None:
    [fix] = run(gga("120000.00"))
    assert fix.valid and fix.utc_ms is None


def test_zda_supplies_the_date() -> None:
    [fix] = run(gga("103607.00"), nmea("GNZDA", "103607.00", "06", "03", "2021", "00", "00"))
    assert fix.valid and fix.utc_ms == 1615026967000


def test_epochs_without_any_time_are_still_separated() -> None:
    cycle = nmea("GPVTG", "", "T", "", "M", "", "N", "", "K", "N") + gga("", q="0", lat="", lon="")
    assert len(run(cycle * 3)) == 3


def test_frozen_receiver_clock_still_gives_one_fix_per_epoch() -> None:
    cycle = gga("000000.00", q="0") + rmc("000000.00", status="V", mode="N")
    fixes = run(cycle * 3)
    assert [f.invalid_reason for f in fixes] == ["no_fix"] * 3


def test_distance() -> None:
    assert distance_m(0, 0, 0, 1) == pytest.approx(111_319.49, rel=1e-5)  # WGS-84, equator


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GGA", "RMC", "GST", "GSA", "VTG", "ZDA"]),
            st.lists(st.text(alphabet="0123456789.,-+ANSEWVMKT", max_size=12), max_size=14),
        ),
        max_size=40,
    )
)
def test_any_field_content_never_raises(items: list[tuple[str, list[str]]]) -> None:
    m = EpochMerger()
    for kind, fields in items:
        for s in NmeaDecoder().feed(nmea("GP" + kind, *fields)):
            for fix in m.push(s, 0):
                _check(fix)
    last = m.flush()
    if last:
        _check(last)


def _check(fix: Fix) -> None:
    if fix.valid:
        assert fix.lat is not None and fix.lon is not None
        assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180
        assert fix.acc_m is None or math.isfinite(fix.acc_m)
    else:
        assert fix.lat is None and fix.invalid_reason
