"""Seeded generator of realistic noisy GPS walks near checkpoints, with ground truth."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from firmware_bridge.geo import offset_deg
from firmware_bridge.types import Fix


@dataclass(frozen=True, slots=True)
class Noise:
    """GPS error model; defaults are an urban handheld receiver at walking pace."""

    sigma_m: tuple[float, float] = (3.0, 5.0)  # horizontal RMS error (DRMS), drawn once per walk
    tau_s: tuple[float, float] = (10.0, 40.0)  # correlation time: GPS error drifts, it is not white
    white_frac: float = 0.2  # share of the error variance that is fix-to-fix jitter
    acc_bias: tuple[float, float] = (0.8, 1.25)  # reported acc_m / true sigma (receivers misjudge)
    outlier_p: float = 0.01  # per fix: a multipath jump starts
    outlier_m: tuple[float, float] = (50.0, 300.0)
    outlier_max_fixes: int = 2  # a jump lasts 1..this many fixes
    loss_p: float = 0.004  # per fix: a fix-loss period starts
    loss_s: tuple[float, float] = (2.0, 30.0)
    period_ms: int = 1000


CLEAN = Noise(sigma_m=(0.0, 0.0), outlier_p=0.0, loss_p=0.0)


@dataclass(frozen=True, slots=True)
class Walk:
    """One walk: the receiver's fixes, the true track and facts about it versus the checkpoint."""

    kind: str  # "visit", "pass_by" or "through"
    fixes: tuple[Fix, ...]
    truth: tuple[tuple[int, float, float], ...]  # (utc_ms, north_m, east_m) from the centre
    closest_m: float  # closest true approach to the centre
    inside_s: float  # longest continuous true time within the radius


Leg = tuple[float, float, float]  # (north_m, east_m, seconds to get there from the previous)


def _longest_inside(truth: tuple[tuple[int, float, float], ...], radius_m: float) -> float:
    best = 0.0
    start: int | None = None
    for t, n, e in truth:
        if math.hypot(n, e) <= radius_m:
            start = t if start is None else start
            best = max(best, (t - start) / 1000.0)
        else:
            start = None
    return best


def _track(
    rng: random.Random, legs: list[Leg], t0_ms: int, period_ms: int
) -> list[tuple[int, float, float]]:
    # Piecewise-linear true track through the legs, with a little body sway when standing.
    keys = [(0.0, legs[0][0], legs[0][1])]
    for n, e, dur in legs[1:]:
        keys.append((keys[-1][0] + dur, n, e))
    out = []
    k = 0
    steps = int(keys[-1][0] * 1000 // period_ms) + 1
    for i in range(steps):
        s = i * period_ms / 1000.0
        while k + 1 < len(keys) - 1 and s > keys[k + 1][0]:
            k += 1
        (sa, na, ea), (sb, nb, eb) = keys[k], keys[k + 1]
        f = 0.0 if sb <= sa else min(1.0, max(0.0, (s - sa) / (sb - sa)))
        n, e = na + f * (nb - na), ea + f * (eb - ea)
        if (na, ea) == (nb, eb):
            n, e = n + rng.gauss(0.0, 0.3), e + rng.gauss(0.0, 0.3)
        out.append((t0_ms + i * period_ms, n, e))
    return out


def _observe(
    rng: random.Random,
    truth: list[tuple[int, float, float]],
    centre: tuple[float, float],
    noise: Noise,
) -> list[Fix]:
    # Gauss-Markov error (drifting) + white jitter, scaled by a wandering HDOP; jumps; losses.
    sigma_h = rng.uniform(*noise.sigma_m)
    sigma = sigma_h / math.sqrt(2.0)  # per axis
    tau = rng.uniform(*noise.tau_s)
    bias = rng.uniform(*noise.acc_bias)
    phi = math.exp(-noise.period_ms / 1000.0 / tau)
    s_gm = sigma * math.sqrt(1.0 - noise.white_frac)
    s_w = sigma * math.sqrt(noise.white_frac)
    en, ee = rng.gauss(0.0, s_gm), rng.gauss(0.0, s_gm)
    hdop0 = rng.uniform(0.8, 1.6)
    hdop = hdop0
    jump: tuple[float, float, int] | None = None  # (north, east, fixes left)
    lost_until = -1
    sats = rng.randint(7, 14)
    out: list[Fix] = []
    for t, n, e in truth:
        hdop = min(4.0, max(0.6, hdop + rng.gauss(0.0, 0.03) + 0.05 * (hdop0 - hdop)))
        scale = hdop / hdop0
        en = phi * en + math.sqrt(1.0 - phi * phi) * rng.gauss(0.0, s_gm)
        ee = phi * ee + math.sqrt(1.0 - phi * phi) * rng.gauss(0.0, s_gm)
        if t < lost_until or rng.random() < noise.loss_p:
            if t >= lost_until:
                lost_until = t + int(rng.uniform(*noise.loss_s) * 1000)
            out.append(Fix(valid=False, utc_ms=t, lat=None, lon=None, fix="none", sats=3))
            continue
        if jump is None and rng.random() < noise.outlier_p:
            r, a = rng.uniform(*noise.outlier_m), rng.uniform(0.0, 2.0 * math.pi)
            jump = (r * math.cos(a), r * math.sin(a), rng.randint(1, noise.outlier_max_fixes))
        dn = (en + rng.gauss(0.0, s_w)) * scale
        de = (ee + rng.gauss(0.0, s_w)) * scale
        if jump is not None:
            dn, de = dn + jump[0], de + jump[1]
            jump = (jump[0], jump[1], jump[2] - 1) if jump[2] > 1 else None
        lat, lon = offset_deg(centre[0], centre[1], n + dn, e + de)
        acc = max(0.5, sigma_h * bias * scale)  # acc_m estimates the horizontal error
        out.append(
            Fix(
                valid=True,
                utc_ms=t,
                lat=lat,
                lon=lon,
                fix="3d",
                quality=1,
                sats=sats,
                hdop=round(hdop, 2),
                acc_m=round(acc, 1),
                mono_ms=t - truth[0][0] + 60_000,
            )
        )
    return out


def _walk(
    kind: str,
    rng: random.Random,
    legs: list[Leg],
    centre: tuple[float, float],
    radius_m: float,
    t0_ms: int,
    noise: Noise,
) -> Walk:
    truth = _track(rng, legs, t0_ms, noise.period_ms)
    fixes = _observe(rng, truth, centre, noise)
    closest = min(math.hypot(n, e) for _, n, e in truth)
    return Walk(kind, tuple(fixes), tuple(truth), closest, _longest_inside(tuple(truth), radius_m))


def _polar(r: float, a: float) -> tuple[float, float]:
    return r * math.cos(a), r * math.sin(a)


def visit(
    seed: int,
    centre: tuple[float, float],
    radius_m: float,
    dwell_s: float,
    *,
    t0_ms: int = 1_764_000_000_000,
    stop_within: float = 0.5,
    extra_s: tuple[float, float] = (3.0, 20.0),
    noise: Noise = Noise(),
) -> Walk:
    """A genuine visit: walk in, stop within stop_within*radius for dwell_s + extra, walk away."""
    rng = random.Random(seed)
    v = rng.uniform(1.0, 1.6)
    a_in, a_out = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.0, 2 * math.pi)
    start = _polar(rng.uniform(100.0, 160.0), a_in)
    # Uniform over the disc of radius stop_within*radius.
    stop = _polar(stop_within * radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi))
    end = _polar(rng.uniform(100.0, 160.0), a_out)
    stay = dwell_s + rng.uniform(*extra_s)
    legs: list[Leg] = [
        (start[0], start[1], 0.0),
        (stop[0], stop[1], math.dist(start, stop) / v),
        (stop[0], stop[1], stay),
        (end[0], end[1], math.dist(stop, end) / v),
    ]
    return _walk("visit", rng, legs, centre, radius_m, t0_ms, noise)


def pass_by(
    seed: int,
    centre: tuple[float, float],
    radius_m: float,
    *,
    t0_ms: int = 1_764_000_000_000,
    closest_m: tuple[float, float] = (40.0, 80.0),
    linger_s: tuple[float, float] = (0.0, 120.0),
    linger_p: float = 0.5,
    noise: Noise = Noise(),
) -> Walk:
    """A near miss: a straight walk passing closest_m from the centre, sometimes lingering there."""
    rng = random.Random(seed)
    v = rng.uniform(1.0, 1.6)
    a = rng.uniform(0.0, 2 * math.pi)
    b = rng.uniform(*closest_m)
    near = _polar(b, a)
    ux, uy = -math.sin(a), math.cos(a)  # along the walk, perpendicular to the centre direction
    half = rng.uniform(100.0, 160.0)
    start = (near[0] - half * ux, near[1] - half * uy)
    end = (near[0] + half * ux, near[1] + half * uy)
    linger = rng.uniform(*linger_s) if rng.random() < linger_p else 0.0
    legs: list[Leg] = [
        (start[0], start[1], 0.0),
        (near[0], near[1], half / v),
        (near[0], near[1], linger),
        (end[0], end[1], half / v),
    ]
    return _walk("pass_by", rng, legs, centre, radius_m, t0_ms, noise)


def through(
    seed: int,
    centre: tuple[float, float],
    radius_m: float,
    *,
    t0_ms: int = 1_764_000_000_000,
    closest_m: tuple[float, float] = (0.0, 35.0),
    noise: Noise = Noise(),
) -> Walk:
    """A walk straight through (or past) the disc without stopping, closest_m from the centre."""
    rng = random.Random(seed)
    v = rng.uniform(1.0, 1.6)
    a = rng.uniform(0.0, 2 * math.pi)
    near = _polar(rng.uniform(*closest_m), a)
    ux, uy = -math.sin(a), math.cos(a)
    half = rng.uniform(100.0, 160.0)
    legs: list[Leg] = [
        (near[0] - half * ux, near[1] - half * uy, 0.0),
        (near[0] + half * ux, near[1] + half * uy, 2 * half / v),
    ]
    return _walk("through", rng, legs, centre, radius_m, t0_ms, noise)


def route(
    seed: int,
    centre: tuple[float, float],
    waypoints: list[tuple[float, float, float]],
    *,
    t0_ms: int = 1_764_000_000_000,
    noise: Noise = Noise(),
) -> Walk:
    """A walk through (north_m, east_m, stay_s) waypoints from centre; facts are about centre."""
    rng = random.Random(seed)
    v = rng.uniform(1.0, 1.6)
    legs: list[Leg] = [(waypoints[0][0], waypoints[0][1], 0.0)]
    for n, e, stay in waypoints:
        legs.append((n, e, math.dist(legs[-1][:2], (n, e)) / v))
        if stay > 0:
            legs.append((n, e, stay))
    return _walk("route", rng, legs, centre, 0.0, t0_ms, noise)
