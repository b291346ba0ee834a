"""Pure core: geometry, tracker, rules and lifecycle (plain functions and hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.vision import lifecycle, rules, tracker
from agent.vision.geometry import (
    bottom_centre,
    iou,
    merge_overlapping,
    point_in_polygon,
    polygon_area,
)
from agent.vision.lifecycle import LifecycleState, Timing, close_all, step
from agent.vision.rules import Condition, RuleMemory, RuleParams, Scene, SceneObject, Zone

coord = st.floats(min_value=0, max_value=1000, allow_nan=False)
size = st.floats(min_value=1, max_value=300, allow_nan=False)
boxes = st.tuples(coord, coord, size, size)

SQUARE = ((0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0))


# --- geometry ---------------------------------------------------------------------------


@given(boxes, boxes)
def test_iou_is_symmetric_and_bounded(a, b):
    assert abs(iou(a, b) - iou(b, a)) < 1e-9
    assert 0.0 <= iou(a, b) <= 1.0 + 1e-9
    assert abs(iou(a, a) - 1.0) < 1e-9


@given(coord, coord)
def test_point_in_rectangle_polygon_matches_bounds(x, y):
    rect = ((100.0, 200.0), (500.0, 200.0), (500.0, 600.0), (100.0, 600.0))
    assert point_in_polygon((x, y), rect) == (100 <= x <= 500 and 200 <= y <= 600)


def test_point_in_concave_polygon():
    l_shape = ((0, 0), (100, 0), (100, 40), (40, 40), (40, 100), (0, 100))
    assert point_in_polygon((20, 80), l_shape)
    assert not point_in_polygon((80, 80), l_shape)
    assert point_in_polygon((100, 20), l_shape)  # on an edge counts as inside
    assert polygon_area(l_shape) == 100 * 40 + 40 * 60


@given(st.lists(boxes, max_size=12))
def test_merge_overlapping_leaves_disjoint_boxes_covering_all(items):
    merged = merge_overlapping(items)
    for i, a in enumerate(merged):
        for b in merged[i + 1 :]:
            assert iou(a, b) == 0.0
    for x, y, w, h in items:
        assert any(
            mx - 1e-6 <= x
            and my - 1e-6 <= y
            and x + w <= mx + mw + 1e-6
            and y + h <= my + mh + 1e-6
            for mx, my, mw, mh in merged
        )


# --- tracker ----------------------------------------------------------------------------

P = tracker.TrackerParams(iou_min=0.3, max_age_s=2.0, min_hits=2, still_px=5.0)


def det(x, y, w=40, h=100, label="person", score=0.9):
    return tracker.Detection((x, y, w, h), score, label)


def test_tracker_keeps_ids_for_moving_objects_and_confirms():
    s = tracker.TrackerState()
    s = tracker.update(s, [det(0, 0), det(300, 0)], 0.0, P)
    assert [t.id for t in s.tracks] == [1, 2]
    assert tracker.confirmed(s, P) == ()
    s = tracker.update(s, [det(305, 2), det(8, 0)], 0.2, P)
    by_id = {t.id: t for t in s.tracks}
    assert by_id[1].box[0] == 8 and by_id[2].box[0] == 305
    assert {t.id for t in tracker.confirmed(s, P)} == {1, 2}


def test_tracker_matches_fast_mover_by_centroid_and_never_across_labels():
    s = tracker.update(tracker.TrackerState(), [det(0, 0)], 0.0, P)
    s = tracker.update(s, [det(25, 0)], 0.2, P)  # IoU ~0.23 < 0.3, centre jump 25 < 0.75*100
    assert [t.id for t in s.tracks] == [1]
    s = tracker.update(s, [det(25, 0, label="car")], 0.4, P)
    assert sorted(t.id for t in s.tracks) == [1, 2]


def test_tracker_drops_stale_tracks_and_tracks_stillness():
    s = tracker.update(tracker.TrackerState(), [det(0, 0)], 0.0, P)
    s = tracker.update(s, [det(10, 0)], 1.0, P)
    s = tracker.update(s, [det(12, 1)], 2.0, P)  # within still_px of the anchor
    (t,) = s.tracks
    assert t.still_since == 1.0 and t.hits == 3
    assert tracker.age(s, 3.9, P).tracks
    assert tracker.age(s, 4.1, P).tracks == ()
    s2 = tracker.update(tracker.age(s, 4.1, P), [det(12, 1)], 4.1, P)
    assert [t.id for t in s2.tracks] == [2]  # a new object, never a reused id


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(boxes, max_size=6), min_size=1, max_size=8))
def test_tracker_ids_unique_and_increasing(frames):
    s = tracker.TrackerState()
    seen_max = 0
    for i, frame in enumerate(frames):
        s = tracker.update(s, [tracker.Detection(b, 0.5, "person") for b in frame], i * 0.5, P)
        ids = [t.id for t in s.tracks]
        assert len(ids) == len(set(ids))
        assert all(0 < i < s.next_id for i in ids)
        assert s.next_id > seen_max
        seen_max = s.next_id - 1
        # Every detection of this frame belongs to exactly one live track.
        assert sum(1 for t in s.tracks if t.last_seen == i * 0.5) == len(frame)


# --- rules ------------------------------------------------------------------------------


def person(i, x, y, since=0.0, label="person"):
    # Box whose bottom centre is (x, y).
    return SceneObject(i, label, (x - 10, y - 50, 20, 50), 0.8, since)


def run_rules(scenes, zones, params=None):
    params = params or RuleParams()
    mem = RuleMemory()
    out = []
    for scene in scenes:
        mem, conds = rules.evaluate(scene, zones, params, mem)
        out.append(conds)
    return out


def test_crowd_needs_min_people_for_min_s():
    zone = Zone("plaza", SQUARE, frozenset({"crowd"}))
    params = RuleParams(crowd=rules.CrowdParams(min_people=3, min_s=2.0))
    three = (person(1, 10, 10), person(2, 20, 20), person(3, 30, 30))
    outside = (person(4, 500, 500),)
    scenes = [
        Scene(0.0, 0, three[:2] + outside),
        Scene(1.0, 0, three),
        Scene(2.5, 0, three),
        Scene(3.1, 0, three),
        Scene(3.5, 0, three[:2]),
        Scene(4.0, 0, three),
    ]
    out = run_rules(scenes, [zone], params)
    assert [len(c) for c in out] == [0, 0, 0, 1, 0, 0]
    (c,) = out[3]
    assert (c.rule, c.zone, c.count, c.since) == ("crowd", "plaza", 3, 1.0)
    assert len(c.boxes) == 3


def test_loitering_is_per_person_dwell():
    zone = Zone("gate", SQUARE, frozenset({"loitering"}))
    params = RuleParams(loitering=rules.LoiteringParams(min_s=10.0))
    scenes = [
        Scene(0.0, 0, (person(1, 50, 50),)),
        Scene(5.0, 0, (person(1, 50, 50), person(2, 60, 60))),
        Scene(10.0, 0, (person(1, 50, 50), person(2, 60, 60))),
        Scene(12.0, 0, (person(2, 60, 60),)),
        Scene(15.0, 0, (person(2, 60, 60),)),
    ]
    out = run_rules(scenes, [zone], params)
    assert [[(c.count, c.since) for c in cs] for cs in out] == [[], [], [(1, 0.0)], [], [(1, 5.0)]]


def test_water_zone_only_in_hours_and_only_people():
    zone = Zone("shore", SQUARE, frozenset({"water_zone"}))
    params = RuleParams(water_zone=rules.WaterZoneParams(windows=((20 * 60, 6 * 60),)))
    dog = person(9, 50, 50, label="dog")
    out = run_rules(
        [
            Scene(0.0, 12 * 60, (person(1, 50, 50),)),
            Scene(1.0, 23 * 60, (dog,)),
            Scene(2.0, 23 * 60, (person(1, 50, 50),)),
            Scene(3.0, 5 * 60, (person(1, 50, 50),)),
        ],
        [zone],
        params,
    )
    assert [len(c) for c in out] == [0, 0, 1, 1]


@given(st.integers(0, 1439), st.integers(0, 1439), st.integers(0, 1439))
def test_in_windows_wraps_midnight(minute, start, end):
    inside = rules.in_windows(minute, [(start, end)])
    if start == end:
        assert inside
    elif start < end:
        assert inside == (start <= minute < end)
    else:
        assert inside == (not (end <= minute < start))


def test_parking_uses_static_objects_since_they_stopped():
    zone = Zone("kerb", SQUARE, frozenset({"parking"}))
    params = RuleParams(parking=rules.ParkingParams(min_s=30.0))
    car = SceneObject(1, "object", (20, 20, 40, 30), 1.0, since=100.0)
    out = run_rules(
        [Scene(120.0, 0, statics=(car,)), Scene(131.0, 0, statics=(car,))], [zone], params
    )
    assert [len(c) for c in out] == [0, 1]
    assert out[1][0].since == 100.0
    labelled = RuleParams(parking=rules.ParkingParams(min_s=0.0, labels=frozenset({"car"})))
    assert run_rules([Scene(131.0, 0, statics=(car,))], [zone], labelled) == [()]


def test_tamper_signs_and_duration():
    params = RuleParams(tamper=rules.TamperParams(min_s=2.0))
    ok = rules.TamperMetrics(110.0, 50.0, 400.0, 400.0, 0.05)
    dark = rules.TamperMetrics(5.0, 2.0, 3.0, 400.0, 0.9)
    blurred = rules.TamperMetrics(110.0, 40.0, 30.0, 400.0, 0.1)
    assert rules.tamper_reasons(ok, params.tamper) == ()
    assert rules.tamper_reasons(dark, params.tamper) == ("covered", "blurred", "moved")
    assert rules.tamper_reasons(blurred, params.tamper) == ("blurred",)
    out = run_rules(
        [Scene(t, 0, tamper=m) for t, m in ((0, ok), (1, dark), (2, dark), (3.5, dark), (4, ok))],
        [],
        params,
    )
    assert [len(c) for c in out] == [0, 0, 0, 1, 0]
    assert out[3][0].zone is None and out[3][0].since == 1


# --- lifecycle --------------------------------------------------------------------------

TIMING = Timing(update_min_s=5.0, end_after_s=2.0, cooldown_s=30.0)


def cond(count=3, rule="crowd", zone="plaza", since=0.0):
    return Condition(rule, zone, count, 0.7, (), since)


def drive(script, timing=TIMING):
    """script: [(t, [conditions])] -> all transitions in order."""
    state = LifecycleState(prefix="cam.run")
    out = []
    for t, conds in script:
        state, trs = step(state, conds, t, timing)
        out.extend(trs)
    return state, out


def test_lifecycle_start_update_end_share_one_track():
    _, out = drive(
        [
            (0.0, [cond(3, since=-4.0)]),
            (1.0, [cond(4)]),  # count changed but within update_min_s
            (5.0, [cond(4)]),
            (6.0, [cond(4)]),  # unchanged: no update
            (11.0, [cond(5)]),
            (12.0, []),
            (13.0, []),  # absent 1 s: still open
            (14.0, []),  # absent 2 s: ends
        ]
    )
    assert [tr.state for tr in out] == ["start", "update", "update", "end"]
    assert {tr.track for tr in out} == {"cam.run-1"}
    assert [tr.count for tr in out] == [3, 4, 5, 5]
    assert out[0].started_t == -4.0 and out[0].ended_t is None
    assert out[-1].ended_t == 11.0


def test_lifecycle_cooldown_per_rule_and_zone():
    _, out = drive(
        [
            (0.0, [cond()]),
            (1.0, []),
            (3.0, []),  # end at 3 -> quiet until 33
            (4.0, [cond(), cond(zone="gate")]),  # plaza suppressed, gate starts
            (20.0, [cond(), cond(zone="gate")]),
            (33.0, [cond(), cond(zone="gate")]),  # plaza may start again
        ]
    )
    assert [(tr.state, tr.zone, tr.track) for tr in out] == [
        ("start", "plaza", "cam.run-1"),
        ("end", "plaza", "cam.run-1"),
        ("start", "gate", "cam.run-2"),
        ("start", "plaza", "cam.run-3"),
    ]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 9)), min_size=1, max_size=60))
def test_lifecycle_order_and_storm_bound(pattern):
    script = [(i * 1.0, [cond(n)] if on else []) for i, (on, n) in enumerate(pattern)]
    state, out = drive(script, Timing(update_min_s=3.0, end_after_s=1.0, cooldown_s=10.0))
    _, tail = close_all(state, len(pattern) * 1.0)
    out.extend(tail)
    per_track: dict[str, list[str]] = {}
    for tr in out:
        per_track.setdefault(tr.track, []).append(tr.state)
    for states in per_track.values():
        assert states[0] == "start" and states[-1] == "end"
        assert states.count("start") == 1 and states.count("end") == 1
    starts = [tr.t for tr in out if tr.state == "start"]
    ends = [tr.t for tr in out if tr.state == "end"]
    # One (rule, zone): events alternate, and a new start waits out the previous end's cool-down.
    assert len(starts) == len(ends)
    for prev_end, start in zip(ends, starts[1:], strict=False):
        assert start >= prev_end + 10.0
    updates = [tr.t for tr in out if tr.state == "update"]
    assert all(b - a >= 3.0 for a, b in itertools.pairwise(updates))


def test_close_all_ends_every_open_event():
    state, _ = drive([(0.0, [cond(), cond(rule="tamper", zone=None)])])
    state, tail = lifecycle.close_all(state, 9.0)
    assert [(tr.state, tr.rule) for tr in tail] == [("end", "crowd"), ("end", "tamper")]
    assert state.open == {}


def test_bottom_centre_decides_zone_membership():
    zone = Zone("z", SQUARE, frozenset({"water_zone"}))
    assert zone.contains((40, 50, 20, 50))  # feet at (50, 100): on the edge
    assert not zone.contains((40, 60, 20, 50))  # head inside, feet outside
    assert bottom_centre((40, 60, 20, 50)) == (50, 110)
