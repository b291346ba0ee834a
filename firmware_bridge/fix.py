"""Epoch merger: checksum-verified sentences in, one Fix per receiver epoch out; pure.

Interface:
    merger = EpochMerger(hdop_uere_m=5.0)
    fixes: list[Fix] = merger.push(sentence, mono_ms)   # 0 or 1 fix (rarely 2)
    last: Fix | None = merger.flush()                   # end of a burst / of the stream
    merger.stats() -> {"epochs", "valid", "invalid_<reason>", "late", "unparseable"}

Epochs. GGA, RMC, GST and ZDA carry the epoch's time of day; GSA and VTG join the epoch that
is open. A timed sentence starts a new epoch when its second differs from the open one, or
when its kind was already seen in the open epoch with another time (10 Hz receivers) or from
the same talker (a frozen clock). Same kind and time from another talker (GPGGA then GLGGA in
one SiRF epoch) is a duplicate: GN wins, else the first. Receivers stamp GGA and RMC of one
epoch a few hundred ms apart (Magellan), hence the whole-second rule. An epoch closes at the
next epoch's first sentence, at flush(), or as soon as it holds every kind the previous epoch
held (so the fix is not one epoch late); a sentence of an already closed epoch arriving after
that is counted as `late` and teaches the merger to wait for it next time.

Validity (the receiver must say so; any reason below gives valid=False, invalid_reason set and
lat/lon/alt/acc/speed/course None so a careless consumer cannot use a position the receiver
disowned):
  no GGA/RMC; GGA quality missing, 0 (no_fix), 6 (dead_reckoning), 7 (manual), 8 (simulator);
  RMC status not A (rmc_void); RMC mode E/M/S/N; empty/impossible lat/lon; 0,0 (null_island);
  GGA and RMC positions more than 250 m apart (gga_rmc_mismatch); no time; time not after the
  last valid fix (time_backwards). A receiver that restarted with an older clock is believed
  again after 10 consecutive advancing epochs, so a bogus future date cannot lock fixes out.

acc_m: sqrt(lat_sd² + lon_sd²) from GST when the receiver sends it, else HDOP × 5 m (a typical
1-sigma user-equivalent range error for single-frequency consumer GNSS). fix kind: GSA's
2D/3D when present, else 3d when GGA has an altitude, 2d otherwise. utc_ms needs a date
(RMC or ZDA in the same epoch), else None while the fix may still be valid.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TypeVar

from firmware_bridge.geo import distance_m
from firmware_bridge.nmea import Sentence
from firmware_bridge.nmea_fields import Gga, Gsa, Gst, Record, Rmc, Vtg, Zda, parse_fields
from firmware_bridge.types import Fix, FixKind

HDOP_UERE_M = 5.0
KNOT_MPS = 1852.0 / 3600.0
DAY_MS = 86_400_000
_TIMED = ("GGA", "RMC", "GST", "ZDA")
_BAD_QUALITY = {0: "no_fix", 6: "dead_reckoning", 7: "manual", 8: "simulator"}
_BAD_MODE = {"E": "dead_reckoning", "M": "manual", "S": "simulator", "N": "no_fix"}
_GOOD_MODES = frozenset("ADFPR")  # autonomous, differential, float RTK, precise, RTK
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_R = TypeVar("_R", Gga, Rmc, Gsa, Gst, Vtg, Zda)


def _pick(records: dict[str, Record], kind: str, cls: type[_R]) -> _R | None:
    rec = records.get(kind)
    return rec if isinstance(rec, cls) else None


@dataclass(slots=True)
class _Epoch:
    tod_ms: int | None = None
    mono_ms: int | None = None
    seen: dict[str, int | None] = field(default_factory=dict)
    talkers: set[str] = field(default_factory=set)  # "GPGGA", "GLGGA": duplicates by talker
    records: dict[str, Record] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Stamp:
    utc_ms: int | None
    tod_ms: int


def _after(new: _Stamp, old: _Stamp) -> bool:
    """True when `new` is strictly later than `old` (day wrap handled when a date is missing)."""
    if new.utc_ms is not None and old.utc_ms is not None:
        return new.utc_ms > old.utc_ms
    delta = (new.tod_ms - old.tod_ms) % DAY_MS
    return 0 < delta < DAY_MS // 2


class EpochMerger:
    """Merges GGA/RMC/GSA/GST/VTG(/ZDA) into one Fix per epoch and decides its validity."""

    def __init__(
        self,
        *,
        hdop_uere_m: float = HDOP_UERE_M,
        max_gga_rmc_split_m: float = 250.0,
        backwards_resync_epochs: int = 10,
    ) -> None:
        self._uere = hdop_uere_m
        self._max_split = max_gga_rmc_split_m
        self._resync_after = max(1, backwards_resync_epochs)
        self._cur: _Epoch | None = None
        self._expect: set[str] = set()
        self._last_closed_tod: int | None = None
        self._last_valid: _Stamp | None = None
        self._candidate: _Stamp | None = None
        self._candidate_run = 0
        self._stats: dict[str, int] = {"epochs": 0, "valid": 0, "late": 0, "unparseable": 0}

    def push(self, sentence: Sentence, mono_ms: int | None = None) -> list[Fix]:
        """Add one sentence; returns the fixes of the epochs it closed."""
        rec = parse_fields(sentence)
        if rec is None:
            if sentence.talker != "P" and sentence.kind in ("GGA", "RMC", "GSA", "GST", "VTG"):
                self._stats["unparseable"] += 1
            return []
        kind = sentence.kind
        tod = getattr(rec, "tod_ms", None) if kind in _TIMED else None
        if tod is not None and tod == self._last_closed_tod and kind not in self._expect:
            # A straggler of an epoch already closed early: wait for its kind next time. (A kind
            # the closed epoch already had means a new epoch with a frozen clock: not late.)
            self._stats["late"] += 1
            self._expect.add(kind)
            return []
        out: list[Fix] = []
        cur = self._cur
        if cur is not None and self._starts_new_epoch(cur, sentence.talker, kind, tod):
            out.append(self._close())
            cur = None
        if cur is None:
            cur = self._cur = _Epoch()
        self._add(cur, kind, tod, rec, mono_ms)
        if self._expect and self._expect <= cur.seen.keys() and {"GGA", "RMC"} & cur.seen.keys():
            out.append(self._close())
        return out

    def flush(self) -> Fix | None:
        """Close the open epoch (the receiver went quiet or the stream ended)."""
        return self._close() if self._cur is not None else None

    def stats(self) -> dict[str, int]:
        """Counters: epochs, valid, late, unparseable, invalid_<reason>."""
        return dict(self._stats)

    def _starts_new_epoch(self, cur: _Epoch, talker: str, kind: str, tod: int | None) -> bool:
        if kind == "GSA":
            return False  # one GSA per constellation per epoch is normal
        if kind in cur.seen:
            # Same time from another talker is a duplicate; from the same talker, a receiver
            # whose clock is frozen (no time yet) started its next epoch.
            return tod is None or cur.seen[kind] != tod or talker + kind in cur.talkers
        if tod is None or cur.tod_ms is None:
            return False
        return tod // 1000 != cur.tod_ms // 1000

    def _add(self, cur: _Epoch, kind: str, tod: int | None, rec: Record, mono: int | None) -> None:
        if mono is not None:
            cur.mono_ms = mono
        cur.talkers.add(rec.talker + kind)
        if cur.tod_ms is None and tod is not None:
            cur.tod_ms = tod
        if kind in cur.records:
            old = cur.records[kind]
            if kind == "GSA" or old.talker == "GN" or rec.talker != "GN":
                return
        cur.seen[kind] = tod
        cur.records[kind] = rec

    def _close(self) -> Fix:
        cur = self._cur
        assert cur is not None
        self._cur = None
        self._expect = set(cur.seen)
        self._last_closed_tod = cur.tod_ms
        fix = self._build(cur)
        self._stats["epochs"] += 1
        if fix.valid:
            self._stats["valid"] += 1
        else:
            key = f"invalid_{fix.invalid_reason}"
            self._stats[key] = self._stats.get(key, 0) + 1
        return fix

    def _build(self, ep: _Epoch) -> Fix:
        r = ep.records
        gga, rmc, gsa = _pick(r, "GGA", Gga), _pick(r, "RMC", Rmc), _pick(r, "GSA", Gsa)
        gst, vtg, zda = _pick(r, "GST", Gst), _pick(r, "VTG", Vtg), _pick(r, "ZDA", Zda)

        tod = gga.tod_ms if gga is not None and gga.tod_ms is not None else ep.tod_ms
        utc_ms = self._utc_ms(rmc, zda, tod)
        lat = gga.lat if gga is not None and gga.lat is not None else (rmc.lat if rmc else None)
        lon = gga.lon if gga is not None and gga.lon is not None else (rmc.lon if rmc else None)
        hdop = gga.hdop if gga is not None and gga.hdop else (gsa.hdop if gsa else None)
        hdop = hdop if hdop is not None and hdop > 0 else None  # 0.0 is "not available"
        quality = gga.quality if gga is not None else None
        sats = gga.sats if gga is not None else None

        reason = self._invalid_reason(gga, rmc, lat, lon, tod)
        stamp = _Stamp(utc_ms, tod) if tod is not None else None
        if reason is None and stamp is not None:
            reason = self._check_time(stamp)
        if reason is not None:
            return Fix(
                valid=False,
                utc_ms=utc_ms,
                lat=None,
                lon=None,
                quality=quality,
                fix="none",
                sats=sats,
                hdop=hdop,
                mono_ms=ep.mono_ms,
                invalid_reason=reason,
            )
        alt = gga.alt_m if gga is not None else None
        return Fix(
            valid=True,
            utc_ms=utc_ms,
            lat=lat,
            lon=lon,
            alt_m=alt,
            quality=quality,
            fix=self._kind(gsa, alt),
            sats=sats,
            hdop=hdop,
            acc_m=self._acc(gst, hdop),
            speed_mps=self._speed(rmc, vtg),
            course_deg=self._course(rmc, vtg),
            mono_ms=ep.mono_ms,
        )

    def _invalid_reason(
        self,
        gga: Gga | None,
        rmc: Rmc | None,
        lat: float | None,
        lon: float | None,
        tod: int | None,
    ) -> str | None:
        if gga is None and rmc is None:
            return "no_position_sentence"
        why = _gga_problem(gga) or _rmc_problem(rmc)
        if why is not None:
            return why
        if lat is None or lon is None:
            return "no_position"
        if lat == 0.0 and lon == 0.0:
            return "null_island"
        if gga is not None and rmc is not None and self._split_m(gga, rmc) > self._max_split:
            return "gga_rmc_mismatch"
        if tod is None:
            return "no_time"
        return None

    def _check_time(self, stamp: _Stamp) -> str | None:
        last = self._last_valid
        if last is None or _after(stamp, last):
            self._last_valid = stamp
            self._candidate, self._candidate_run = None, 0
            return None
        # Backwards (or repeated) time: only a steady new timeline wins the receiver back.
        cand = self._candidate
        self._candidate_run = self._candidate_run + 1 if cand and _after(stamp, cand) else 1
        self._candidate = stamp
        if self._candidate_run >= self._resync_after:
            self._last_valid = stamp
            self._candidate, self._candidate_run = None, 0
            return None
        return "time_backwards"

    @staticmethod
    def _split_m(gga: Gga, rmc: Rmc) -> float:
        if gga.lat is None or gga.lon is None or rmc.lat is None or rmc.lon is None:
            return 0.0
        return distance_m(gga.lat, gga.lon, rmc.lat, rmc.lon)

    @staticmethod
    def _utc_ms(rmc: Rmc | None, zda: Zda | None, tod: int | None) -> int | None:
        date = rmc.date if rmc is not None and rmc.date is not None else None
        if rmc is not None and date is not None and rmc.tod_ms is not None:
            tod = rmc.tod_ms  # RMC's own time goes with RMC's date
        if date is None and zda is not None:
            date = zda.date
        if date is None or tod is None:
            return None
        midnight = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
        return (midnight - _EPOCH) // dt.timedelta(milliseconds=1) + tod

    def _acc(self, gst: Gst | None, hdop: float | None) -> float | None:
        if gst is not None and gst.lat_sd_m is not None and gst.lon_sd_m is not None:
            acc = math.hypot(gst.lat_sd_m, gst.lon_sd_m)
            if acc > 0:
                return round(acc, 2)
        return None if hdop is None else round(hdop * self._uere, 2)

    @staticmethod
    def _kind(gsa: Gsa | None, alt: float | None) -> FixKind:
        if gsa is not None and gsa.fix_type in (2, 3):
            return "3d" if gsa.fix_type == 3 else "2d"
        return "3d" if alt is not None else "2d"

    @staticmethod
    def _speed(rmc: Rmc | None, vtg: Vtg | None) -> float | None:
        if rmc is not None and rmc.speed_kn is not None and rmc.speed_kn >= 0:
            return round(rmc.speed_kn * KNOT_MPS, 3)
        if vtg is not None and vtg.speed_kmh is not None and vtg.speed_kmh >= 0:
            return round(vtg.speed_kmh / 3.6, 3)
        return None

    @staticmethod
    def _course(rmc: Rmc | None, vtg: Vtg | None) -> float | None:
        for value in (rmc.course_deg if rmc else None, vtg.course_deg if vtg else None):
            if value is not None and 0 <= value <= 360:
                return value % 360
        return None


def _gga_problem(gga: Gga | None) -> str | None:
    """Why GGA's fix quality makes the fix unusable (None: fine, or no GGA)."""
    if gga is None:
        return None
    if gga.quality is None:
        return "no_quality"
    if gga.quality in _BAD_QUALITY:
        return _BAD_QUALITY[gga.quality]
    if not 1 <= gga.quality <= 5:
        return "bad_quality"
    return None


def _rmc_problem(rmc: Rmc | None) -> str | None:
    """Why RMC's status or mode makes the fix unusable (None: fine, or no RMC)."""
    if rmc is None:
        return None
    if rmc.status != "A":
        return "rmc_void"
    if rmc.mode in _BAD_MODE:
        return _BAD_MODE[rmc.mode]
    if rmc.mode and rmc.mode not in _GOOD_MODES:
        return "bad_mode"
    return None
