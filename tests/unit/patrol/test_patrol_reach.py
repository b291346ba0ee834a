"""Reach: time a person on foot needs to cross the radius counts as inside (docs/checkin.md §5)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.patrol.core import CheckIn, CheckinParams, Decision, PatrolEngine
from agent.patrol.core.geofence import DwellRun, reach_ms, step_run
from tests.kits.engine import T0, checkins, engine, fix
from tests.kits.engine import cp_north as cp
from tests.kits.engine import feed_fixes as stand
from tests.kits.engine import hour_task as task

REACH = CheckinParams()  # the defaults: reach on at 2 m/s


def test_reach_is_on_by_default_and_measured_from_the_conservative_position() -> None:
    assert REACH.reach_speed_mps == 2.0
    # 25 m radius, fix at 5 m with acc 4: conservatively at 5 + 1.5*4 = 11 m, 14 m from the edge.
    assert reach_ms(5.0, 4.0, 25.0, REACH) == 7000
    assert reach_ms(20.0, 4.0, 25.0, REACH) == 0  # conservatively beyond the edge: no reach
    assert reach_ms(5.0, 4.0, 25.0, CheckinParams(reach_speed_mps=0.0)) == 0


def test_reach_never_adds_more_than_the_run_observed() -> None:
    # At the centre, acc 3: 10.25 s of lead from the first fix, but credit <= observed time,
    # so the check-in comes after 5 s of fixes (5 observed + 5 credited), not on the first fix.
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    assert stand(e, 0.0, 0, 4) == []
    ds = stand(e, 0.0, 5, 5)
    assert checkins(ds) == [("t", "a", "gps")]


def test_reach_adds_only_what_the_distance_to_the_edge_allows() -> None:
    # First fix at 17 m, acc 2: conservatively at 20 m, 5 m from the edge = 2.5 s of lead;
    # then 21 m, acc 2: "likely", conservatively at the edge. Check-in at 8 s (7.5 needed).
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    assert stand(e, 17.0, 0, 0, acc=2.0) == []
    assert stand(e, 21.0, 1, 7, acc=2.0) == []
    assert checkins(stand(e, 21.0, 8, 8, acc=2.0)) == [("t", "a", "gps")]


def test_reach_after_the_last_fix_counts_only_as_fix_time_passes() -> None:
    # In at the edge (2.5 s of lead), then 5 s at the centre, then the fix is lost. Nothing is
    # decided ahead of time; the next fix (4 s later, near the edge: "unknown") shows that time
    # passed, and from the centre nobody walks out in it: that fix decides, and the check-in
    # reports the last fix inside.
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    out = stand(e, 17.0, 0, 0, acc=2.0) + stand(e, 0.0, 1, 5, acc=2.0)
    assert out == []  # 5 s observed + 2.5 s of lead
    late = fix(24.0, 9, acc=4.0)  # unknown: neither in nor out
    ds = e.on_fix(late, T0, True)
    [ci] = [d for d in ds if isinstance(d, CheckIn)]
    assert ci.deciding == late
    assert ci.fix is not None and ci.fix.utc_ms == T0 + 5000
    assert ci.dist_m is not None and ci.dist_m < 1.0


def test_without_reach_the_same_walk_does_not_check_in() -> None:
    e = engine(task("t", [cp("a", 0)]))  # the rule tests' default: reach off
    out = stand(e, 17.0, 0, 0, acc=2.0) + stand(e, 0.0, 1, 5, acc=2.0)
    out += e.on_fix(fix(24.0, 9, acc=4.0), T0, True)
    assert checkins(out) == []


def test_a_departure_seen_outside_ends_the_run() -> None:
    # 0-3 s at the centre, out to 45 m (outside at 6 s) and back: had the run not ended, it
    # would check in at 9 s; the new run starts at 8 s (15 m, lead 2 s): check-in at 16 s.
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    assert stand(e, 0.0, 0, 3, acc=2.0) == []
    out: list[Decision] = []
    for t, north in [(4, 15.0), (5, 30.0), (6, 45.0), (7, 30.0), (8, 15.0)]:
        out += e.on_fix(fix(north, t, acc=3.0), T0, True)
    assert out == [] and e.counters.outliers == 0
    assert stand(e, 0.0, 9, 15, acc=2.0) == []
    assert checkins(stand(e, 0.0, 16, 16, acc=2.0)) == [("t", "a", "gps")]


def test_lead_never_reaches_back_past_a_fix_seen_outside() -> None:
    # Outside at 0 s (35 m, acc 4), then at 5 m from 2 s: the first fix's reach is 8.5 s, but
    # the person was seen outside 2 s before it, so the lead is 2 s: check-in at 10, not 7.
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    assert e.on_fix(fix(35.0, 0, acc=4.0), T0, True) == []
    assert stand(e, 5.0, 2, 9, acc=2.0) == []
    assert checkins(stand(e, 5.0, 10, 10, acc=2.0)) == [("t", "a", "gps")]


def test_snapshot_keeps_reach_and_reads_old_three_item_runs() -> None:
    e = engine(task("t", [cp("a", 0)]), params=REACH)
    stand(e, 0.0, 0, 3, acc=2.0)
    data = json.loads(json.dumps(e.snapshot()))
    run = data["progress"]["t"]["runs"]["a"]
    assert len(run) == 6 and run[3] > 0  # lead kept
    e2 = PatrolEngine(params=REACH)
    e2.restore(data)
    assert e2.snapshot() == e.snapshot()
    data["progress"]["t"]["runs"]["a"] = run[:3]  # written before reach existed
    e3 = PatrolEngine(params=REACH)
    e3.restore(data)
    assert e3.snapshot()["progress"]["t"]["runs"]["a"] == [
        run[0],
        run[1],
        run[2],
        0,
        run[1],
        run[1],
    ]


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["inside", "likely", "hold", "unknown", "outside"]),
            st.integers(0, 20_000),
            st.integers(1, 5_000),
        ),
        max_size=40,
    )
)
def test_credit_is_bounded_by_observed_time(steps: list[tuple[str, int, int]]) -> None:
    # Whatever the verdicts and reaches: dwell <= 2 x the in-fix span, and never negative.
    run: DwellRun | None = None
    t = 0
    for verdict, reach, dt in steps:
        t += dt
        run = step_run(run, verdict, t, REACH, reach)  # type: ignore[arg-type]
        if run is not None:
            observed = run.last_ms - run.start_ms
            assert 0 <= run.dwelled_ms() <= 2 * observed
