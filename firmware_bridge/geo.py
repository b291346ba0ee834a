"""Short-range distances on the WGS-84 ellipsoid: pure functions, metres and degrees."""

from __future__ import annotations

import math

# WGS-84 defining constants.
_A = 6_378_137.0
_F = 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)


def radii_m(lat_deg: float) -> tuple[float, float]:
    """Meridional (north) and parallel (east) metres per radian of latitude/longitude at lat_deg."""
    phi = math.radians(lat_deg)
    s = math.sin(phi)
    w2 = 1.0 - _E2 * s * s
    w = math.sqrt(w2)
    meridional = _A * (1.0 - _E2) / (w2 * w)
    prime_vertical = _A / w
    return meridional, prime_vertical * math.cos(phi)


def _dlon_deg(lon1: float, lon2: float) -> float:
    # Shortest signed longitude difference, so a path across the antimeridian stays short.
    d = (lon2 - lon1) % 360.0
    return d - 360.0 if d > 180.0 else d


def local_ne_m(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """North/east metres of (lat, lon) from (lat0, lon0), local plane at their mid-latitude."""
    m, p = radii_m((lat0 + lat) / 2.0)
    return math.radians(lat - lat0) * m, math.radians(_dlon_deg(lon0, lon)) * p


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Distance in metres, ellipsoidal equirectangular: < 1 mm error at 1 km, < 0.1 % to 50 km."""
    north, east = local_ne_m(lat1, lon1, lat2, lon2)
    return math.hypot(north, east)


def offset_deg(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point north_m/east_m metres from (lat, lon): local_ne_m inverted, short offsets."""
    m, _ = radii_m(lat)
    lat2 = lat + math.degrees(north_m / m)
    # One refinement at the mid-latitude makes the round trip with local_ne_m exact to first order.
    m, p = radii_m((lat + lat2) / 2.0)
    lat2 = lat + math.degrees(north_m / m)
    lon2 = lon + math.degrees(east_m / p) if p > 0.0 else lon
    return lat2, (lon2 + 180.0) % 360.0 - 180.0


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Bearing in degrees [0, 360) from point 1 to point 2 (0 north, 90 east), local plane."""
    north, east = local_ne_m(lat1, lon1, lat2, lon2)
    if north == 0.0 and east == 0.0:
        return 0.0
    return math.degrees(math.atan2(east, north)) % 360.0
