"""PatrolEngine: GPS check-ins by dwell, windows, sequences, progress.

NFC, manual, replace and snapshot/restore: test_patrol_engine_inputs.py.
"""

from __future__ import annotations

import pytest

from agent.patrol.core import (
    CheckIn,
    CheckinParams,
    Decision,
    Progress,
)
from firmware_bridge.types import Fix
from tests.kits.engine import HOUR, T0, checkins, engine, events, fix
from tests.kits.engine import cp_north as cp
from tests.kits.engine import feed_fixes as stand
from tests.kits.engine import hour_task as task

# ---- GPS ---------------------------------------------------------------------------------------


def test_gps_check_in_after_dwell_and_only_once() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200)]))
    assert stand(e, 5.0, 0, 9) == []  # 9 s inside: not yet
    ds = stand(e, 5.0, 10, 60)
    assert checkins(ds) == [("t", "a", "gps")]
    ci = next(d for d in ds if isinstance(d, CheckIn))
    assert ci.fix is not None and ci.fix.utc_ms == T0 + 10_000  # the deciding fix
    assert ci.dist_m == pytest.approx(5.0, abs=0.01)
    assert ci.acc_m == 3.0 and ci.staff_id == "s1" and not ci.needs_photo
    assert events(ds) == [("t", "started", None, 0, 2)]


def test_checkin_body_has_the_contract_fields() -> None:
    e = engine(task("t", [cp("a", 0, photo=True)]))
    ci = next(d for d in stand(e, 0.0, 0, 10) if isinstance(d, CheckIn))
    b = ci.to_body()
    assert set(b) | {"photos", "prev"} == {
        "task_id",
        "checkpoint_id",
        "staff_id",
        "method",
        "lat",
        "lon",
        "acc_m",
        "fix",
        "sats",
        "hdop",
        "gps_ts",
        "dist_m",
        "tag_uid",
        "photos",
        "prev",
    }
    assert (b["method"], b["fix"], b["gps_ts"], b["tag_uid"]) == ("gps", "3d", T0 + 10_000, None)
    assert ci.needs_photo


def test_dwell_at_zero_checks_in_on_the_first_inside_fix() -> None:
    e = engine(task("t", [cp("a", 0, dwell=0)]))
    assert checkins(e.on_fix(fix(0.0, 0), T0, True)) == [("t", "a", "gps")]


def test_inaccurate_fixes_are_not_evidence_either_way() -> None:
    e = engine(task("t", [cp("a", 0)]))
    # acc 30 m at the centre: 0 + 1.5*30 > 25 -> unknown; they neither start nor break a run.
    assert stand(e, 0.0, 0, 60, acc=30.0) == []
    stand(e, 0.0, 61, 65)
    stand(e, 0.0, 66, 70, acc=30.0)  # unknown inside a live run: no break, no extension
    assert checkins(stand(e, 0.0, 71, 71)) == [("t", "a", "gps")]


def test_likely_fixes_count_once_one_fix_is_confidently_inside() -> None:
    e = engine(task("t", [cp("a", 0)]))
    # acc 8 at 10 m: 10 + 1.5*8 <= 25 is "likely", 10 + 2.5*8 > 25 is not "inside".
    assert stand(e, 10.0, 0, 12, acc=8.0) == []  # 12 s: past dwell_s, but unconfirmed
    ds = stand(e, 10.0, 13, 13, acc=3.0)  # one confident fix confirms the whole run
    assert checkins(ds) == [("t", "a", "gps")]


def test_a_long_likely_run_confirms_itself() -> None:
    p = CheckinParams()
    e = engine(task("t", [cp("a", 0)]))
    assert stand(e, 10.0, 0, p.confirm_s - 1, acc=8.0) == []
    ds = stand(e, 10.0, p.confirm_s, p.confirm_s, acc=8.0)
    assert checkins(ds) == [("t", "a", "gps")]


def test_invalid_and_unpositioned_fixes_are_ignored() -> None:
    e = engine(task("t", [cp("a", 0)]))
    for t in range(30):
        e.on_fix(fix(0.0, t, valid=False), T0, True)
        e.on_fix(Fix(valid=True, utc_ms=T0 + t * 1000, lat=None, lon=None, fix="3d"), T0, True)
        e.on_fix(fix(0.0, t + 0.5, acc=None, hdop=None), T0, True)  # accuracy unknown
    assert e.counters.not_evidence == 90
    assert checkins(stand(e, 0.0, 100, 110)) == [("t", "a", "gps")]


def test_hdop_stands_in_for_missing_acc() -> None:
    e = engine(task("t", [cp("a", 0)]))
    assert checkins(stand(e, 0.0, 0, 10, acc=None, hdop=1.0)) == [("t", "a", "gps")]
    e = engine(task("t", [cp("a", 0)]))
    assert stand(e, 0.0, 0, 60, acc=None, hdop=4.0) == []  # 20 m: 1.5*20 > 25, unknown


def test_leaving_breaks_the_dwell_and_edge_jitter_does_not() -> None:
    e = engine(task("t", [cp("a", 0)]))
    stand(e, 0.0, 0, 6)
    for t, north in [(7, 20.0), (8, 40.0), (9, 60.0), (10, 40.0), (11, 20.0)]:
        assert e.on_fix(fix(north, t), T0, True) == []  # out to 60 m: run broken
    assert stand(e, 0.0, 12, 20) == []  # 9 s of the new run (from 11)
    e = engine(task("t", [cp("a", 0)]))
    out: list[Decision] = []
    for t in range(0, 16):  # entered at 15 m, then jitter between 19 and 24 m
        out += e.on_fix(fix(15.0 if t < 2 else (19.0 if t % 2 else 24.0), t), T0, True)
    assert checkins(out) == [("t", "a", "gps")]


def test_gap_up_to_gap_s_is_bridged_longer_restarts() -> None:
    p = CheckinParams()
    e = engine(task("t", [cp("a", 0, dwell=20)]))
    stand(e, 0.0, 0, 2)
    assert checkins(stand(e, 0.0, 2 + p.gap_s, 2 + p.gap_s)) == [("t", "a", "gps")]
    e = engine(task("t", [cp("a", 0, dwell=20)]))
    stand(e, 0.0, 0, 2)
    assert stand(e, 0.0, 3 + p.gap_s, 3 + p.gap_s + 19) == []


HOLD = CheckinParams(
    k_hold=0.5, reach_speed_mps=0.0
)  # the optional hold tier (off by default: docs/checkin.md)


def test_hold_is_off_by_default() -> None:
    p = CheckinParams()
    assert p.k_hold == p.k_stay  # a hold fix is then just a likely one
    e = engine(task("t", [cp("a", 0)]))
    stand(e, 0.0, 100, 103)
    # acc 4 at 20 m is not likely: without the hold tier it does not extend the run.
    assert stand(e, 20.0, 104, 130, acc=4.0) == []


def test_hold_fixes_keep_a_confirmed_run_but_never_start_or_confirm_one() -> None:
    p = HOLD
    # acc 4 at 20 m: 20 + 0.5*4 <= 25 is "hold", 20 + 1.5*4 > 25 is not "likely".
    assert 20.0 + p.k_hold * 4.0 <= 25.0 < 20.0 + p.k_stay * 4.0
    e = engine(task("t", [cp("a", 0)]), params=HOLD)
    assert stand(e, 20.0, 0, 60, acc=4.0) == []  # hold alone never starts a run
    stand(e, 0.0, 100, 103)  # confidently inside: a confirmed run
    assert stand(e, 20.0, 104, 109, acc=4.0) == []
    ds = stand(e, 20.0, 110, 110, acc=4.0)  # 10 s since the run started, on a hold fix
    assert checkins(ds) == [("t", "a", "gps")]
    ci = next(d for d in ds if isinstance(d, CheckIn))
    assert ci.dist_m is not None and ci.dist_m <= 25.0 - p.k_hold * 4.0 + 0.01
    # An unconfirmed (likely-only) run is neither extended nor confirmed by hold fixes.
    e = engine(task("t", [cp("a", 0)]), params=HOLD)
    assert stand(e, 10.0, 0, 5, acc=8.0) == []  # likely, not inside
    assert stand(e, 20.0, 6, 40, acc=4.0) == []  # would pass confirm_s if hold counted


def test_hold_fixes_cannot_outlast_a_real_departure() -> None:
    e = engine(task("t", [cp("a", 0)]), params=HOLD)
    stand(e, 0.0, 0, 4)
    for t in range(5, 11):  # walks out at 8 m/s to 48 m, beyond the band: the run ends
        assert e.on_fix(fix(8.0 * (t - 4), t), T0, True) == []
    assert stand(e, 20.0, 11, 40, acc=4.0) == []  # hold fixes do not revive it


def test_multipath_jump_right_after_a_fix_loss_does_not_break_a_dwell() -> None:
    e = engine(task("t", [cp("a", 0)]))
    assert stand(e, 0.0, 0, 5) == []
    # 20 s of fix loss, then a jump of 150 m: reachable at max_speed over 21 s, but the gate
    # credits at most gate_gap_s of it, so the jump is rejected instead of breaking the run.
    assert e.on_fix(fix(150.0, 26), T0, True) == []
    assert e.counters.outliers == 1
    ds = e.on_fix(fix(0.0, 27), T0, True)  # bridged: 27 s since the run started
    assert checkins(ds) == [("t", "a", "gps")]


def test_gate_follows_a_vehicle_at_a_slow_fix_rate() -> None:
    # One fix every 5 s at 12 m/s: 60 m apart, more than the capped allowance, so each step is
    # followed by re-anchoring on a chain (uncapped within the chain); the gate never sticks.
    e = engine(task("t", [cp("a", 0)]))
    out: list[Decision] = []
    for k in range(11):
        out += e.on_fix(fix(600.0 - 60.0 * k, 5 * k), T0, True)
    for k in range(11, 16):
        out += e.on_fix(fix(0.0, 5 * k), T0, True)
    assert checkins(out) == [("t", "a", "gps")]
    ci = next(d for d in out if isinstance(d, CheckIn))
    assert ci.fix is not None and ci.fix.utc_ms is not None
    assert ci.fix.utc_ms <= T0 + 75_000


def test_params_keep_the_hysteresis_order() -> None:
    with pytest.raises(ValueError, match="k_hold"):
        CheckinParams(k_hold=2.0)
    with pytest.raises(ValueError, match="gate_gap_s"):
        CheckinParams(gate_gap_s=0.0)


def test_multipath_jump_does_not_break_a_dwell() -> None:
    e = engine(task("t", [cp("a", 0)]))
    out = stand(e, 0.0, 0, 5)
    out += e.on_fix(fix(150.0, 6), T0, True)  # a jump of 150 m in 1 s
    out += stand(e, 0.0, 7, 10)
    assert checkins(out) == [("t", "a", "gps")]
    assert e.counters.outliers == 1


def test_gate_follows_a_real_move_after_reanchor_n_fixes() -> None:
    e = engine(task("t", [cp("a", 0)]))
    stand(e, 500.0, 0, 5)
    # Teleport (a car ride the receiver missed): rejected at first, followed after 3 fixes.
    ds = stand(e, 0.0, 6, 30)
    assert checkins(ds) == [("t", "a", "gps")]
    ci = next(d for d in ds if isinstance(d, CheckIn))
    # The chain 6, 7, 8 re-anchors; the dwell counts from its first fix.
    assert ci.fix is not None and ci.fix.utc_ms == T0 + 16_000
    assert e.counters.outliers == 2


def test_late_and_replayed_fixes_are_dropped() -> None:
    e = engine(task("t", [cp("a", 0)]))
    stand(e, 0.0, 0, 5)
    assert e.on_fix(fix(0.0, 3), T0, True) == []
    assert e.on_fix(fix(0.0, 5), T0, True) == []
    assert e.counters.late == 2


def test_reorder_window_judges_late_fixes_in_fix_time_order() -> None:
    e = engine(task("t", [cp("a", 0)]), params=CheckinParams(reorder_ms=3000, reach_speed_mps=0.0))
    out = []
    for t in [0, 2, 1, 4, 3, 5, 7, 6, 9, 8, 10, 11, 12, 13]:
        out += e.on_fix(fix(0.0, t), T0 + t * 1000, True)
    assert checkins(out) == [("t", "a", "gps")]
    ci = next(d for d in out if isinstance(d, CheckIn))
    assert ci.fix is not None and ci.fix.utc_ms == T0 + 10_000  # released when 13 arrived
    assert e.counters.late == 0


def test_receiver_time_reset_starts_judging_afresh() -> None:
    e = engine(task("t", [cp("a", 0)]))
    stand(e, 0.0, 0, 5)
    far = fix(0.0, 10_000)  # a bogus time far ahead
    e.on_fix(far, T0, True)
    assert checkins(stand(e, 0.0, 6, 16)) == [("t", "a", "gps")]
    assert e.counters.time_resets == 1


def test_no_gps_check_in_outside_the_window_but_dwell_counts_once_it_opens() -> None:
    e = engine(task("t", [cp("a", 0)], start=T0 + 60_000))
    out = []
    for t in range(0, 65):
        out += e.on_fix(fix(0.0, t), T0 + t * 1000, True)
    assert checkins(out) == [("t", "a", "gps")]
    assert next(d for d in out if isinstance(d, CheckIn)).at_ms == T0 + 60_000


def test_without_right_time_every_task_is_active() -> None:
    e = engine(task("t", [cp("a", 0)], start=T0 + 10 * HOUR, end=T0 + 11 * HOUR))
    out = []
    for t in range(0, 11):
        out += e.on_fix(fix(0.0, t), 0, False)  # wall clock unknown
    assert checkins(out) == [("t", "a", "gps")]


def test_overlapping_tasks_each_get_their_check_in() -> None:
    e = engine(task("t1", [cp("a", 0)]), task("t2", [cp("x", 3), cp("y", 200)]))
    assert sorted(checkins(stand(e, 0.0, 0, 10))) == [("t1", "a", "gps"), ("t2", "x", "gps")]


# ---- sequence, progress ------------------------------------------------------------------------


def test_sequence_gps_never_skips_and_nfc_skip_marks_earlier_missed() -> None:
    e = engine(
        task("t", [cp("a", 0), cp("b", 200, tags=["0A0B0C0D"]), cp("c", 400)], order="sequence")
    )
    assert stand(e, 400.0, 0, 40) == []  # standing at c while a is next: no check-in
    ds = e.on_tag("0a:0b:0c:0d", None, T0 + 50_000, True)
    assert checkins(ds) == [("t", "b", "nfc")]
    assert events(ds) == [("t", "started", None, 0, 3), ("t", "checkpoint_missed", "a", 1, 3)]
    ds = stand(e, 400.0, 60, 80)
    assert checkins(ds) == [("t", "c", "gps")]
    assert events(ds) == [("t", "completed", None, 2, 3)]


def test_sequence_loop_with_start_and_end_at_the_same_place() -> None:
    e = engine(
        task(
            "t",
            [cp("a", 0, tags=["11223344"]), cp("b", 200), cp("z", 0, tags=["11223344"])],
            order="sequence",
        )
    )
    ds = stand(e, 0.0, 0, 20)
    assert checkins(ds) == [("t", "a", "gps")]  # not z: that would skip b
    ds = e.on_tag("11223344", None, T0 + 30_000, True)  # the shared tag: earliest unresolved = z
    assert checkins(ds) == [("t", "z", "nfc")]
    assert ("t", "checkpoint_missed", "b", 2, 3) in events(ds)


def test_window_end_misses_the_rest_then_overdue_once() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200), cp("c", 400)]))
    stand(e, 0.0, 0, 10)
    assert e.tick(T0 + HOUR - 1, True) == []
    ds = e.tick(T0 + HOUR, True)
    assert events(ds) == [
        ("t", "checkpoint_missed", "b", 1, 3),
        ("t", "checkpoint_missed", "c", 1, 3),
        ("t", "overdue", None, 1, 3),
    ]
    assert e.tick(T0 + 2 * HOUR, True) == []
    assert stand(e, 200.0, 4000, 4100) == []  # ended: nothing more


def test_no_overdue_while_time_is_unknown() -> None:
    e = engine(task("t", [cp("a", 0)]))
    assert e.tick(T0 + 5 * HOUR, False) == []
    assert events(e.tick(T0 + 5 * HOUR, True))[-1] == ("t", "overdue", None, 0, 1)


def test_never_started_task_goes_overdue_without_started() -> None:
    e = engine(task("t", [cp("a", 0)]))
    assert [ev[1] for ev in events(e.tick(T0 + HOUR, True))] == ["checkpoint_missed", "overdue"]


def test_completed_when_every_checkpoint_is_checked_in() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200)]))
    stand(e, 0.0, 0, 10)
    ds = stand(e, 200.0, 300, 320)
    assert events(ds) == [("t", "completed", None, 2, 2)]
    assert e.tick(T0 + HOUR, True) == []
    st = e.status()[0]
    assert (st.done, st.missed, st.total, st.ended, st.next_checkpoint_id) == (
        2,
        0,
        2,
        "completed",
        None,
    )


def test_progress_body_matches_contract() -> None:
    e = engine(task("t", [cp("a", 0)]))
    p = next(d for d in e.tick(T0 + HOUR, True) if isinstance(d, Progress))
    assert p.to_body() == {
        "task_id": "t",
        "event": "checkpoint_missed",
        "checkpoint_id": "a",
        "done": 0,
        "total": 1,
    }
