"""Pure map-datum conversions: GCJ-02 (Amap, Tencent, Google China) and BD-09 (Baidu) to WGS-84.

GCJ-02 is WGS-84 shifted by a published, non-linear function of position (the "offset" every
Chinese web map applies; 300-700 m in Zhengzhou); BD-09 is GCJ-02 rotated and shifted again.
The forward formulas below are the well-known public description (Krasovsky ellipsoid constants,
the two trigonometric series); the inverse of GCJ-02 has no closed form, so `gcj02_to_wgs84`
iterates the forward function until it lands within a millimetre. Coordinates outside China
are left unchanged, as every Chinese map does. All functions take and return (lat, lon).
"""

from __future__ import annotations

import math
from typing import Literal

Datum = Literal["wgs84", "gcj02", "bd09"]
DATUMS: tuple[Datum, ...] = ("wgs84", "gcj02", "bd09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 description uses it
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0  # BD-09's rotation constant
_ITER_TOL_DEG = 1e-9  # ~0.1 mm: the inverse stops when the forward image is this close


def in_china(lat: float, lon: float) -> bool:
    """The rough box in which Chinese maps apply the offset (the published `out_of_china`)."""
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _dlat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2 / 3
    return ret


def _dlon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    return ret


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """WGS-84 -> GCJ-02 (the forward offset)."""
    if not in_china(lat, lon):
        return lat, lon
    d_lat = _dlat(lon - 105.0, lat - 35.0)
    d_lon = _dlon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return lat + d_lat, lon + d_lon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 -> WGS-84 by fixed-point iteration of the forward offset (mm accuracy).

    The offset changes by well under 1 % between points a few hundred metres apart, so
    `w <- w - (f(w) - g)` contracts fast: three or four steps reach the tolerance.
    """
    if not in_china(lat, lon):
        return lat, lon
    w_lat, w_lon = lat, lon
    for _ in range(30):
        f_lat, f_lon = wgs84_to_gcj02(w_lat, w_lon)
        e_lat, e_lon = f_lat - lat, f_lon - lon
        if abs(e_lat) < _ITER_TOL_DEG and abs(e_lon) < _ITER_TOL_DEG:
            break
        w_lat, w_lon = w_lat - e_lat, w_lon - e_lon
    return w_lat, w_lon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 -> BD-09 (Baidu's published rotation and shift)."""
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """BD-09 -> GCJ-02 (the published inverse; accurate to a few centimetres)."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.sin(theta), z * math.cos(theta)


def to_wgs84(datum: Datum, lat: float, lon: float) -> tuple[float, float]:
    """A point in `datum` -> WGS-84 (lat, lon)."""
    if datum == "gcj02":
        return gcj02_to_wgs84(lat, lon)
    if datum == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))
    return lat, lon
