"""pynmea2 adapter: a checksum-verified Sentence in, a typed frozen record out (or None).

Interface:
    parse_fields(sentence) -> Gga | Rmc | Gsa | Gst | Vtg | Zda | None
    None means "not a kind the fix model uses" or "fields pynmea2 cannot make sense of".

pynmea2 does the field splitting and unit conversion; this module is the only place that
knows its quirks (why an adapter: pynmea2 returns the raw string when a typed conversion
fails, 0.0 for an empty latitude, and NaN for "nan"), so everything leaving here is either a
finite number of the right type or None. Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import pynmea2

from firmware_bridge.nmea import Sentence

USED_KINDS = frozenset({"GGA", "RMC", "GSA", "GST", "VTG", "ZDA"})
# Exceptions pynmea2 lets escape from parse() and from its lazy field properties.
_PARSE_ERRORS = (ValueError, TypeError, AttributeError, IndexError, ArithmeticError)


@dataclass(frozen=True, slots=True)
class Gga:
    """GGA: time of day, position, quality, satellites, HDOP, altitude."""

    talker: str
    tod_ms: int | None
    lat: float | None
    lon: float | None
    quality: int | None
    sats: int | None
    hdop: float | None
    alt_m: float | None


@dataclass(frozen=True, slots=True)
class Rmc:
    """RMC: time, status (A/V), position, speed (knots), course, date, NMEA 2.3+ mode."""

    talker: str
    tod_ms: int | None
    status: str
    lat: float | None
    lon: float | None
    speed_kn: float | None
    course_deg: float | None
    date: dt.date | None
    mode: str  # "" before NMEA 2.3


@dataclass(frozen=True, slots=True)
class Gsa:
    """GSA: fix type (1 none, 2 2D, 3 3D) and dilutions."""

    talker: str
    fix_type: int | None
    pdop: float | None
    hdop: float | None


@dataclass(frozen=True, slots=True)
class Gst:
    """GST: standard deviations of the latitude and longitude error in metres."""

    talker: str
    tod_ms: int | None
    lat_sd_m: float | None
    lon_sd_m: float | None


@dataclass(frozen=True, slots=True)
class Vtg:
    """VTG: course over ground (true) and speed in km/h (or knots)."""

    talker: str
    course_deg: float | None
    speed_kmh: float | None
    mode: str


@dataclass(frozen=True, slots=True)
class Zda:
    """ZDA: time of day and full date."""

    talker: str
    tod_ms: int | None
    date: dt.date | None


Record = Gga | Rmc | Gsa | Gst | Vtg | Zda


def _num(value: Any) -> float | None:
    """A finite float from a pynmea2 value (str, float, Decimal) or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except _PARSE_ERRORS:
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _tod_ms(value: Any) -> int | None:
    # pynmea2 returns datetime.time on success and the raw string when the conversion failed.
    if not isinstance(value, dt.time):
        return None
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def _coord(msg: Any, which: str) -> float | None:
    raw = _text(getattr(msg, which))
    hemi = _text(getattr(msg, which + "_dir"))
    # pynmea2 turns an empty field or a missing hemisphere into 0.0: both mean "no position".
    if not raw or hemi not in (("N", "S") if which == "lat" else ("E", "W")):
        return None
    value = _num(msg.latitude if which == "lat" else msg.longitude)
    if value is None:
        return None
    limit = 90.0 if which == "lat" else 180.0
    # Minutes >= 60 ("4860.0000") are impossible even though pynmea2 accepts them.
    minutes = float(raw[raw.index(".") - 2 :]) if "." in raw else 0.0
    if abs(value) > limit or minutes >= 60.0:
        return None
    return value


def _zda_date(msg: Any) -> dt.date | None:
    day, month, year = _int(msg.day), _int(msg.month), _int(msg.year)
    if day is None or month is None or year is None:
        return None
    try:
        return dt.date(year, month, day)
    except _PARSE_ERRORS:
        return None


def _build(kind: str, talker: str, msg: Any) -> Record | None:
    if kind == "GGA":
        return Gga(
            talker,
            _tod_ms(msg.timestamp),
            _coord(msg, "lat"),
            _coord(msg, "lon"),
            _int(msg.gps_qual),
            _int(msg.num_sats),
            _num(msg.horizontal_dil),
            _num(msg.altitude),
        )
    if kind == "RMC":
        return Rmc(
            talker,
            _tod_ms(msg.timestamp),
            _text(msg.status),
            _coord(msg, "lat"),
            _coord(msg, "lon"),
            _num(msg.spd_over_grnd),
            _num(msg.true_course),
            _date(msg.datestamp),
            _text(msg.mode_indicator),
        )
    if kind == "GSA":
        return Gsa(talker, _int(msg.mode_fix_type), _num(msg.pdop), _num(msg.hdop))
    if kind == "GST":
        return Gst(
            talker, _tod_ms(msg.timestamp), _num(msg.std_dev_latitude), _num(msg.std_dev_longitude)
        )
    if kind == "VTG":
        kmh = _num(msg.spd_over_grnd_kmph)
        if kmh is None:
            knots = _num(msg.spd_over_grnd_kts)
            kmh = None if knots is None else knots * 1.852
        return Vtg(talker, _num(msg.true_track), kmh, _text(msg.faa_mode))
    if kind == "ZDA":
        return Zda(talker, _tod_ms(msg.timestamp), _zda_date(msg))
    return None


def parse_fields(sentence: Sentence) -> Record | None:
    """Typed fields of a GGA/RMC/GSA/GST/VTG/ZDA sentence, or None (other kind or unparseable)."""
    if sentence.talker == "P" or sentence.kind not in USED_KINDS:
        return None
    try:
        msg = pynmea2.parse(sentence.raw)
        return _build(sentence.kind, sentence.talker, msg)
    except _PARSE_ERRORS:
        return None
