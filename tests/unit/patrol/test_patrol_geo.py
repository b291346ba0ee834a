"""firmware_bridge.geo against an independent ellipsoidal reference (Vincenty's inverse formula)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.geo import distance_m, local_ne_m, offset_deg

A, F = 6_378_137.0, 1 / 298.257223563
B = A * (1 - F)


def vincenty_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Reference geodesic distance on WGS-84 (Vincenty 1975, iterated to 1e-12 rad)."""
    u1 = math.atan((1 - F) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - F) * math.tan(math.radians(lat2)))
    big_l = math.radians(lon2 - lon1)
    lam = big_l
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        ss = math.hypot(
            math.cos(u2) * sl, math.cos(u1) * math.sin(u2) - math.sin(u1) * math.cos(u2) * cl
        )
        if ss == 0:
            return 0.0
        cs = math.sin(u1) * math.sin(u2) + math.cos(u1) * math.cos(u2) * cl
        sigma = math.atan2(ss, cs)
        sa = math.cos(u1) * math.cos(u2) * sl / ss
        c2a = 1 - sa * sa
        c2sm = cs - 2 * math.sin(u1) * math.sin(u2) / c2a if c2a else 0.0
        c = F / 16 * c2a * (4 + F * (4 - 3 * c2a))
        prev = lam
        lam = big_l + (1 - c) * F * sa * (sigma + c * ss * (c2sm + c * cs * (-1 + 2 * c2sm**2)))
        if abs(lam - prev) < 1e-12:
            break
    u_sq = c2a * (A * A - B * B) / (B * B)
    k1 = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    k2 = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    ds = (
        k2
        * ss
        * (
            c2sm
            + k2
            / 4
            * (cs * (-1 + 2 * c2sm**2) - k2 / 6 * c2sm * (-3 + 4 * ss**2) * (-3 + 4 * c2sm**2))
        )
    )
    return B * k1 * (sigma - ds)


@pytest.mark.parametrize("lat", [0.0, 22.5, 30.27, 45.0, 60.0, -33.9])
@pytest.mark.parametrize("bearing", [0.0, 45.0, 90.0, 137.0])
@pytest.mark.parametrize("dist", [1.0, 25.0, 300.0, 5_000.0])
def test_distance_matches_ellipsoidal_reference(lat: float, bearing: float, dist: float) -> None:
    lat2, lon2 = offset_deg(
        lat, 120.0, dist * math.cos(math.radians(bearing)), dist * math.sin(math.radians(bearing))
    )
    ref = vincenty_m(lat, 120.0, lat2, lon2)
    # Check-in distances are tens of metres: millimetres there, still < 0.01 % at 5 km.
    assert abs(distance_m(lat, 120.0, lat2, lon2) - ref) <= max(1e-3, 1e-4 * ref)


def test_distance_at_50_km_still_within_a_tenth_of_a_percent() -> None:
    lat2, lon2 = offset_deg(30.0, 120.0, 35_000.0, 35_000.0)
    ref = vincenty_m(30.0, 120.0, lat2, lon2)
    assert abs(distance_m(30.0, 120.0, lat2, lon2) - ref) <= 1e-3 * ref


def test_antimeridian_is_the_short_way() -> None:
    d = distance_m(10.0, 179.9999, 10.0, -179.9999)
    assert d == pytest.approx(vincenty_m(10.0, 179.9999, 10.0, 180.0001), rel=1e-4)
    assert d < 30.0


@given(st.floats(-80, 80), st.floats(-180, 180), st.floats(-500, 500), st.floats(-500, 500))
def test_offset_and_local_plane_round_trip(lat: float, lon: float, n: float, e: float) -> None:
    lat2, lon2 = offset_deg(lat, lon, n, e)
    n2, e2 = local_ne_m(lat, lon, lat2, lon2)
    assert n2 == pytest.approx(n, abs=1e-3)
    assert e2 == pytest.approx(e, abs=1e-3)
    assert distance_m(lat, lon, lat2, lon2) == pytest.approx(
        distance_m(lat2, lon2, lat, lon), abs=1e-6
    )
