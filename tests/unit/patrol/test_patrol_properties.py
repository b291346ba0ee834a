"""Hypothesis properties of the patrol engine: soundness, order, persistence, invariants."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.patrol.core import (
    CheckIn,
    CheckinParams,
    Decision,
    PatrolEngine,
    Progress,
    parse_tasks_body,
)
from firmware_bridge.geo import offset_deg
from firmware_bridge.types import Fix

C = (30.2741, 120.1551)
T0 = 1_764_000_000_000
R = 25.0
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def body(order: str = "any", end: int = T0 + 3_600_000) -> dict[str, Any]:
    cps = []
    for i, (n, e) in enumerate([(0.0, 0.0), (40.0, 0.0), (0.0, 60.0)]):
        lat, lon = offset_deg(*C, n, e)
        cps.append(
            {
                "id": f"c{i}",
                "name": "",
                "lat": lat,
                "lon": lon,
                "radius_m": R,
                "dwell_s": 5.0,
                "tags": [f"0000000{i}"],
                "photo": False,
            }
        )
    return {
        "tasks": [
            {
                "id": "t",
                "name": "",
                "staff_id": None,
                "start_ms": T0,
                "end_ms": end,
                "order": order,
                "checkpoints": cps,
            }
        ]
    }


def mk_fix(t_ms: int, north: float, east: float, acc: float, valid: bool = True) -> Fix:
    lat, lon = offset_deg(*C, north, east)
    return Fix(valid=valid, utc_ms=t_ms, lat=lat, lon=lon, fix="3d", acc_m=acc, hdop=1.0)


@st.composite
def tracks(draw: st.DrawFn, max_len: int = 80) -> list[Fix]:
    """Fix sequences wandering around the checkpoints, in fix-time order, with gaps and jumps."""
    n = draw(st.integers(1, max_len))
    t = T0
    north, east = draw(st.floats(-60, 60)), draw(st.floats(-60, 60))
    out = []
    for _ in range(n):
        t += draw(st.sampled_from([1000, 1000, 1000, 2000, 7000, 40_000]))
        north += draw(st.floats(-3, 3))
        east += draw(st.floats(-3, 3))
        jump = draw(st.sampled_from([0.0] * 8 + [120.0]))
        acc = draw(st.sampled_from([2.0, 3.0, 5.0, 8.0, 15.0, 40.0]))
        out.append(mk_fix(t, north + jump, east, acc, draw(st.sampled_from([True] * 9 + [False]))))
    return out


def feed(e: PatrolEngine, fixes: list[Fix]) -> list[Decision]:
    out: list[Decision] = []
    for f in fixes:
        out += e.on_fix(f, T0 + 1000, True)
    return out


def checkin_keys(ds: list[Decision]) -> list[tuple[str, str, int | None]]:
    return [
        (d.task_id, d.checkpoint_id, d.fix.utc_ms if d.fix else None)
        for d in ds
        if isinstance(d, CheckIn)
    ]


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.floats(R + 0.001, R + 300),
            st.floats(0, 2 * math.pi),
            st.floats(0.0, 60.0),
            st.integers(1, 60_000),
        ),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from(["any", "sequence"]),
)
def test_fixes_never_within_the_radius_never_check_in(
    pts: list[tuple[float, float, float, int]], order: str
) -> None:
    one = body(order)
    one["tasks"][0]["checkpoints"] = one["tasks"][0]["checkpoints"][:1]
    e = PatrolEngine(parse_tasks_body(one))
    t = T0
    for dist, bearing, acc, dt in pts:
        t += dt
        f = mk_fix(t, dist * math.cos(bearing), dist * math.sin(bearing), acc)
        assert not any(isinstance(d, CheckIn) for d in e.on_fix(f, t, True))


@SETTINGS
@given(tracks(), st.randoms(use_true_random=False))
def test_judgement_is_invariant_to_arrival_order_within_the_reorder_window(
    fixes: list[Fix], rnd: random.Random
) -> None:
    window = 5000
    params = CheckinParams(reorder_ms=window)
    # Each fix may arrive up to window-1 ms (of fix time) late.
    keyed = sorted(fixes, key=lambda f: (f.utc_ms or 0) + rnd.randrange(window))
    last = max(f.utc_ms or 0 for f in fixes)
    flush = mk_fix(last + window + 1000, 5000.0, 5000.0, 3.0)  # releases everything before it
    ordered = feed(PatrolEngine(parse_tasks_body(body()), params), [*fixes, flush])
    shuffled = feed(PatrolEngine(parse_tasks_body(body()), params), [*keyed, flush])
    assert checkin_keys(shuffled) == checkin_keys(ordered)


# Found in a full run: a restore mid-run lost the run's seen-in fix (what a check-in reports)
# and the checkpoints' outside times; both are in the snapshot now (docs/checkin.md §9).
SEEN_IN_LOST = (
    [mk_fix(T0 + t * 1000, 22.0, 1.0, 2.0) for t in range(1, 10)]
    + [mk_fix(T0 + 10_000, 20.0, 1.0, 2.0)]
    + [mk_fix(T0 + t * 1000, 18.0, 1.0, 2.0) for t in range(11, 37)]
)


@SETTINGS
@given(tracks(), st.integers(0, 80), st.sampled_from(["any", "sequence"]))
@example(SEEN_IN_LOST, 10, "sequence")
def test_snapshot_restore_anywhere_changes_nothing(fixes: list[Fix], cut: int, order: str) -> None:
    straight = feed(PatrolEngine(parse_tasks_body(body(order))), fixes)
    first = PatrolEngine(parse_tasks_body(body(order)))
    out = feed(first, fixes[:cut])
    second = PatrolEngine()
    second.restore(json.loads(json.dumps(first.snapshot())))
    out += feed(second, fixes[cut:])
    assert out == straight


@SETTINGS
@given(tracks())
def test_replayed_fixes_add_nothing(fixes: list[Fix]) -> None:
    e = PatrolEngine(parse_tasks_body(body()))
    feed(e, fixes)
    before = e.snapshot()
    assert feed(e, fixes) == []
    assert e.snapshot() == before


Action = tuple[str, Any]


@st.composite
def actions(draw: st.DrawFn) -> list[Action]:
    out: list[Action] = []
    for f in draw(tracks(max_len=60)):
        out.append(("fix", f))
        kind = draw(st.sampled_from(["none"] * 6 + ["tag", "manual", "tick", "replace"]))
        if kind == "tag":
            out.append(("tag", draw(st.sampled_from(["00000000", "00000001", "00000002", "FF"]))))
        elif kind == "manual":
            out.append(("manual", draw(st.sampled_from([None, f]))))
        elif kind != "none":
            out.append((kind, None))
    return out


@SETTINGS
@given(actions(), st.sampled_from(["any", "sequence"]), st.booleans())
def test_progress_invariants_under_any_inputs(
    acts: list[Action], order: str, time_ok: bool
) -> None:
    end = T0 + 120_000
    e = PatrolEngine(parse_tasks_body(body(order, end)))
    out: list[Decision] = []
    now = T0
    for kind, arg in acts:
        now += 1500
        if kind == "fix":
            out += e.on_fix(arg, now, time_ok)
        elif kind == "tag":
            out += e.on_tag(arg, None, now, time_ok)
        elif kind == "manual":
            out += e.on_manual(arg, now, time_ok)
        elif kind == "tick":
            out += e.tick(now, time_ok)
        else:  # the same set again: nothing is lost or re-raised
            out += e.replace_tasks(parse_tasks_body(body(order, end)), now, time_ok)
    out += e.tick(end + 1, True)
    cis = [(d.task_id, d.checkpoint_id) for d in out if isinstance(d, CheckIn)]
    assert len(cis) == len(set(cis))  # one check-in per checkpoint per task
    prog = [d for d in out if isinstance(d, Progress)]
    missed = [d.checkpoint_id for d in prog if d.event == "checkpoint_missed"]
    assert len(missed) == len(set(missed)) and not set(missed) & {c for _, c in cis}
    counts = Counter(d.event for d in prog)
    assert counts["started"] == (1 if cis else 0)
    assert counts["completed"] + counts["overdue"] == 1  # exactly one end, after the window
    assert len(cis) + len(missed) == 3  # every checkpoint resolved exactly once
    if cis:
        assert [type(d) for d in out if isinstance(d, CheckIn | Progress)][0] is Progress
    terminal = next(d for d in prog if d.event in ("completed", "overdue"))
    assert (terminal.done, terminal.total) == (len(cis), 3)
    assert prog[-1] is terminal
