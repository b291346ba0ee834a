"""Pure: imported points -> WGS-84, and warnings when their datum is probably not what was said.

Coordinates alone cannot tell GCJ-02 from WGS-84 (both are plausible everywhere in China), so
the heuristic is in two parts, documented in docs/ops.md:
1. the datum was not given and points lie in China: the import reads them as WGS-84 and warns,
   with the offset that GCJ-02 would mean at the first such point (a few hundred metres);
2. the file itself names a Chinese web map (Amap/高德/AutoNavi, Tencent/腾讯, Baidu/百度, or
   GCJ-02/BD-09/火星 in a header, a column, a KML name): when the datum said or assumed differs
   from the one that map uses, the import warns by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from agent.ops.checkpoints import Imported
from agent.ops.datum import Datum, gcj02_to_wgs84, in_china, to_wgs84
from firmware_bridge.geo import distance_m

# What a Chinese map export says about itself, and the datum that map uses.
_HINTS: tuple[tuple[re.Pattern[str], Datum, str], ...] = (
    (re.compile(r"bd-?09|baidu|百度", re.IGNORECASE), "bd09", "Baidu (BD-09)"),
    (
        re.compile(r"gcj-?02|amap|autonavi|高德|火星|tencent|腾讯|qq\s*map", re.IGNORECASE),
        "gcj02",
        "Amap/Tencent (GCJ-02)",
    ),
)
_DIGITS = 7  # ~1 cm: converted coordinates keep no false precision


def source_datum(text: str) -> tuple[Datum, str] | None:
    """The datum a file names (Baidu before Amap: Baidu exports often mention GCJ-02 too)."""
    for pattern, datum, label in _HINTS:
        if pattern.search(text):
            return datum, label
    return None


def convert(points: Sequence[Imported], datum: Datum) -> list[Imported]:
    """Each point's lat/lon from `datum` to WGS-84 (other fields and `where` unchanged)."""
    if datum == "wgs84":
        return list(points)
    out: list[Imported] = []
    for p in points:
        lat, lon = to_wgs84(datum, float(p.checkpoint["lat"]), float(p.checkpoint["lon"]))
        cp = {**p.checkpoint, "lat": round(lat, _DIGITS), "lon": round(lon, _DIGITS)}
        out.append(replace(p, checkpoint=cp))
    return out


def warnings(points: Sequence[Imported], said: Datum | None, source_text: str) -> list[str]:
    """What an operator must hear about the datum (the import itself goes on)."""
    inside = [p for p in points if in_china(p.checkpoint["lat"], p.checkpoint["lon"])]
    named = source_datum(source_text)
    out: list[str] = []
    if said in ("gcj02", "bd09") and len(inside) < len(points):
        out.append(
            f"{len(points) - len(inside)} of {len(points)} points lie outside China, where "
            f"{said} is the same as WGS-84: they were not converted"
        )
    if not inside:
        return out
    assumed: Datum = said or "wgs84"
    if named is not None and named[0] != assumed:
        out.append(
            f"the file names {named[1]}, but its points are read as {assumed}: give "
            f"--datum {named[0]} if they were picked on that map, or they land "
            f"~{_offset_m(inside[0], named[0]):.0f} m off"
        )
    elif said is None:
        out.append(
            f"{len(inside)} points lie in China and --datum was not given: read as WGS-84 "
            "(GPS). Points picked on Amap/Tencent (GCJ-02) or Baidu (BD-09) are "
            f"~{_offset_m(inside[0], 'gcj02'):.0f} m off here: give --datum gcj02 or bd09 to "
            "convert them, or --datum wgs84 to confirm"
        )
    return out


def _offset_m(point: Imported, datum: Datum) -> float:
    lat, lon = float(point.checkpoint["lat"]), float(point.checkpoint["lon"])
    w_lat, w_lon = to_wgs84(datum, lat, lon) if datum != "wgs84" else gcj02_to_wgs84(lat, lon)
    return distance_m(lat, lon, w_lat, w_lon)
