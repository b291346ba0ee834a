"""Noisy generated walks past and through checkpoints give exactly the right check-ins."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from agent.patrol.core import CheckIn, PatrolEngine, Progress, parse_tasks_body
from firmware_bridge.geo import local_ne_m, offset_deg
from firmware_bridge.sim.walks import CLEAN, Noise, Walk, pass_by, route, through, visit

C = (30.2741, 120.1551)
R, DWELL = 25.0, 10.0
T0 = 1_764_000_000_000
# Fix losses up to 20 s (shorter than gap_s): the rest of the default urban model.
TEST_NOISE = Noise(loss_s=(2.0, 20.0))


def cp(cp_id: str, north: float, east: float) -> dict[str, Any]:
    lat, lon = offset_deg(*C, north, east)
    return {
        "id": cp_id,
        "name": cp_id,
        "lat": lat,
        "lon": lon,
        "radius_m": R,
        "dwell_s": DWELL,
        "tags": [],
        "photo": False,
    }


def engine(cps: list[dict[str, Any]], order: str = "any") -> PatrolEngine:
    body = {
        "tasks": [
            {
                "id": "t",
                "name": "t",
                "staff_id": None,
                "start_ms": T0,
                "end_ms": T0 + 3_600_000,
                "order": order,
                "checkpoints": cps,
            }
        ]
    }
    return PatrolEngine(parse_tasks_body(body))


def run(e: PatrolEngine, walk: Walk) -> list[str]:
    got = []
    for f in walk.fixes:
        for d in e.on_fix(f, (f.utc_ms or 0) + 200, True):
            if isinstance(d, CheckIn):
                got.append(d.checkpoint_id)
    return got


def test_walks_are_seeded_and_pure() -> None:
    assert visit(5, C, R, DWELL) == visit(5, C, R, DWELL)
    assert visit(5, C, R, DWELL).fixes != visit(6, C, R, DWELL).fixes


def test_walks_look_like_a_person_with_a_receiver() -> None:
    errors, outliers, lost, speeds = [], 0, 0, []
    for seed in range(40):
        w = visit(seed, C, R, DWELL)
        for f, (_, n, e) in zip(w.fixes, w.truth, strict=True):
            if not f.valid:
                lost += 1
                continue
            assert f.lat is not None and f.lon is not None and f.acc_m is not None
            fn, fe = local_ne_m(*C, f.lat, f.lon)
            err = math.hypot(fn - n, fe - e)
            if err > 40:
                outliers += 1
            else:
                errors.append(err)
        steps = [math.dist(a[1:], b[1:]) for a, b in zip(w.truth, w.truth[1:], strict=False)]
        speeds.append(statistics.median(x for x in steps if x > 0.8))  # moving steps
    rms = math.sqrt(statistics.fmean(x * x for x in errors))
    assert 3.0 <= rms <= 5.5  # horizontal RMS error in the configured 3-5 m
    assert outliers > 0 and lost > 0  # multipath jumps and fix loss do happen
    assert all(1.0 <= s <= 1.6 for s in speeds)  # walking pace


def test_clean_walk_has_no_error() -> None:
    w = visit(1, C, R, DWELL, noise=CLEAN)
    f, (_, n, e) = w.fixes[3], w.truth[3]
    assert f.lat is not None and f.lon is not None
    assert local_ne_m(*C, f.lat, f.lon) == pytest.approx((n, e), abs=1e-6)


@pytest.mark.parametrize("seed", range(0, 300, 3))
def test_genuine_visit_checks_in_exactly_once(seed: int) -> None:
    w = visit(seed, C, R, DWELL, stop_within=0.4, extra_s=(8.0, 30.0), noise=TEST_NOISE)
    e = engine([cp("target", 0, 0), cp("far", 400, 0), cp("farther", -300, 500)])
    assert run(e, w) == ["target"]


@pytest.mark.parametrize("seed", range(1000, 1100))
def test_pass_by_at_40_to_80_m_never_checks_in(seed: int) -> None:
    w = pass_by(seed, C, R, linger_p=1.0, linger_s=(30.0, 180.0), noise=TEST_NOISE)
    assert run(engine([cp("target", 0, 0)]), w) == []


@pytest.mark.parametrize("seed", range(2000, 2060))
def test_walking_past_outside_the_radius_never_checks_in(seed: int) -> None:
    w = through(seed, C, R, closest_m=(R + 5.0, R + 15.0), noise=TEST_NOISE)
    assert w.inside_s == 0
    assert run(engine([cp("target", 0, 0)]), w) == []


@pytest.mark.parametrize("seed", range(3000, 3040))
def test_walking_through_the_middle_is_a_visit_by_the_contract(seed: int) -> None:
    # dwell_s is continuous time inside (§6): crossing the centre at walking pace takes > 30 s.
    w = through(seed, C, R, closest_m=(0.0, 5.0), noise=Noise(loss_p=0.0, outlier_p=0.02))
    assert w.inside_s >= 3 * DWELL
    assert run(engine([cp("target", 0, 0)]), w) == ["target"]


@pytest.mark.parametrize("seed", range(4000, 4030))
def test_patrol_route_checks_in_exactly_the_visited_checkpoints(seed: int) -> None:
    # Visit a, b and d (stopping 20-30 s), pass c at 55 m without stopping.
    cps = [cp("a", 0, 0), cp("b", 200, 0), cp("c", 200, 250), cp("d", 0, 250)]
    w = route(
        seed,
        C,
        [
            (-150.0, 0.0, 0.0),
            (3.0, 2.0, 25.0),
            (198.0, -4.0, 22.0),
            (200.0, 120.0, 0.0),
            (145.0, 250.0, 0.0),
            (4.0, 252.0, 28.0),
            (-150.0, 250.0, 0.0),
        ],
        noise=TEST_NOISE,
    )
    e = engine(cps)
    assert sorted(run(e, w)) == ["a", "b", "d"]
    ends = [
        (d.event, d.checkpoint_id) for d in e.tick(T0 + 3_600_000, True) if isinstance(d, Progress)
    ]
    assert ends == [("checkpoint_missed", "c"), ("overdue", None)]


@pytest.mark.parametrize("seed", range(5000, 5030))
def test_sequence_route_in_order_completes(seed: int) -> None:
    cps = [cp("a", 0, 0), cp("b", 200, 0), cp("c", 200, 250)]
    w = route(
        seed,
        C,
        [
            (-100.0, 0.0, 0.0),
            (2.0, 1.0, 20.0),
            (201.0, 3.0, 20.0),
            (198.0, 247.0, 20.0),
            (100.0, 400.0, 0.0),
        ],
        noise=TEST_NOISE,
    )
    e = engine(cps, order="sequence")
    got, events = [], []
    for f in w.fixes:
        for d in e.on_fix(f, (f.utc_ms or 0) + 200, True):
            if isinstance(d, CheckIn):
                got.append(d.checkpoint_id)
            elif isinstance(d, Progress):
                events.append(d.event)
    assert got == ["a", "b", "c"]
    assert events == ["started", "completed"]
