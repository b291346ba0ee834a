"""PatrolEngine: NFC and manual check-ins, replacing the task set, snapshot and restore.

The GPS dwell, windows, sequences and progress: test_patrol_engine.py.
"""

from __future__ import annotations

import json
import logging

import pytest

from agent.errors import ConfigError
from agent.patrol.core import (
    CheckIn,
    NoCheckpointInReach,
    PatrolEngine,
    TagIgnored,
    UnknownTag,
    parse_tasks_body,
)
from agent.patrol.persistence import ChainHead, state_doc, without_position
from tests.kits.engine import HOUR, T0, checkins, engine, events, fix
from tests.kits.engine import cp_north as cp
from tests.kits.engine import feed_fixes as stand
from tests.kits.engine import hour_task as task

# ---- NFC ---------------------------------------------------------------------------------------


def test_nfc_checks_in_at_once_with_the_current_fix(caplog: pytest.LogCaptureFixture) -> None:
    e = engine(task("t", [cp("a", 0, tags=["04A1B2C3"], photo=True)]))
    ds = e.on_tag("04a1b2c3", fix(8.0, 1), T0 + 1000, True)
    ci = next(d for d in ds if isinstance(d, CheckIn))
    assert (ci.method, ci.tag_uid, ci.needs_photo) == ("nfc", "04A1B2C3", True)
    assert ci.dist_m == pytest.approx(8.0, abs=0.01)
    ds = e.on_tag("04A1B2C3", None, T0 + 2000, True)
    assert ds == [TagIgnored("04A1B2C3", "t", "a", "resolved")]


def test_nfc_without_fix_has_null_position() -> None:
    e = engine(task("t", [cp("a", 0, tags=["04A1B2C3"])]))
    ci = next(
        d for d in e.on_tag("04A1B2C3", fix(0, 0, valid=False), T0, True) if isinstance(d, CheckIn)
    )
    b = ci.to_body()
    assert ci.fix is None and b["fix"] == "none"
    assert all(b[k] is None for k in ("lat", "lon", "acc_m", "sats", "hdop", "gps_ts", "dist_m"))


def test_unknown_tag_is_logged_and_never_checks_in(caplog: pytest.LogCaptureFixture) -> None:
    e = engine(task("t", [cp("a", 0, tags=["04A1B2C3"])]))
    with caplog.at_level(logging.INFO, logger="agent.patrol.core.engine"):
        assert e.on_tag("DEADBEEF", fix(0.0, 0), T0, True) == [UnknownTag("DEADBEEF")]
    assert "DEADBEEF" in caplog.text
    assert e.status()[0].done == 0


def test_tag_of_a_task_not_in_its_window_is_ignored() -> None:
    e = engine(task("t", [cp("a", 0, tags=["04A1B2C3"])], start=T0 + HOUR, end=T0 + 2 * HOUR))
    assert e.on_tag("04A1B2C3", None, T0, True) == [TagIgnored("04A1B2C3", "t", "a", "not_active")]
    assert checkins(e.on_tag("04A1B2C3", None, T0, False)) == [("t", "a", "nfc")]


# ---- manual ------------------------------------------------------------------------------------


def test_manual_picks_the_nearest_in_reach_and_always_wants_a_photo() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 40), cp("c", 400)]))
    ds = e.on_manual(fix(30.0, 0), T0, True)
    ci = next(d for d in ds if isinstance(d, CheckIn))
    assert (ci.checkpoint_id, ci.method, ci.needs_photo) == ("b", "manual", True)
    assert ci.dist_m == pytest.approx(10.0, abs=0.01)


def test_manual_out_of_reach_names_the_nearest() -> None:
    e = engine(task("t", [cp("a", 0), cp("c", 400)]))
    [d] = e.on_manual(fix(100.0, 0, acc=5.0), T0, True)
    assert isinstance(d, NoCheckpointInReach)
    assert (d.reason, d.nearest_checkpoint_id) == ("out_of_reach", "a")
    assert d.nearest_dist_m == pytest.approx(100.0, abs=0.01)
    # reach = radius + acc: 29 m away with acc 5 is within reach.
    assert checkins(e.on_manual(fix(29.0, 1, acc=5.0), T0, True)) == [("t", "a", "manual")]


def test_manual_in_a_sequence_prefers_the_next_checkpoint() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 20)], order="sequence"))
    assert checkins(e.on_manual(fix(18.0, 0), T0, True)) == [("t", "a", "manual")]


def test_manual_without_fix_only_when_one_obvious_candidate() -> None:
    seq = task("s", [cp("a", 0), cp("b", 200)], order="sequence")
    anyo = task("n", [cp("x", 0), cp("y", 200)])
    e = engine(seq)
    assert checkins(e.on_manual(None, T0, True)) == [("s", "a", "manual")]
    e = engine(anyo)
    assert e.on_manual(None, T0, True) == [NoCheckpointInReach("no_fix")]
    assert checkins(engine(seq, anyo).on_manual(None, T0, True)) == [("s", "a", "manual")]
    seq2 = task("s2", [cp("p", 400), cp("q", 600)], order="sequence")
    assert engine(seq, seq2).on_manual(None, T0, True) == [NoCheckpointInReach("ambiguous")]
    e = engine(anyo)
    e.on_tag("00", None, T0, True)
    stand(e, 0.0, 0, 10)  # x checked in: y is the only one left
    assert checkins(e.on_manual(fix(0, 20, acc=80.0), T0, True)) == [("n", "y", "manual")]


def test_manual_with_no_active_task() -> None:
    e = engine(task("t", [cp("a", 0)], start=T0 + HOUR, end=T0 + 2 * HOUR))
    assert e.on_manual(fix(0.0, 0), T0, True) == [NoCheckpointInReach("no_active_task")]


# ---- replacing the task set --------------------------------------------------------------------


def test_replace_keeps_check_ins_and_never_reraises_them() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200), cp("c", 400)]))
    stand(e, 0.0, 0, 10)
    new = parse_tasks_body(
        {"tasks": [task("t", [cp("a", 0), cp("c", 400), cp("d", 600)]), task("u", [cp("a", 0)])]}
    )
    assert e.replace_tasks(new, T0 + 20_000, True) == []
    ds = stand(e, 0.0, 21, 40)
    assert checkins(ds) == [("u", "a", "gps")]  # t/a stays done; the new task gets its own
    st = {s.task_id: s for s in e.status()}
    assert (st["t"].done, st["t"].total) == (1, 3)


def test_replace_that_leaves_only_checked_ins_completes() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200)]))
    stand(e, 0.0, 0, 10)
    ds = e.replace_tasks(parse_tasks_body({"tasks": [task("t", [cp("a", 0)])]}), T0, True)
    assert events(ds) == [("t", "completed", None, 1, 1)]


def test_replace_with_empty_set_stops_everything() -> None:
    e = engine(task("t", [cp("a", 0)]))
    e.replace_tasks(parse_tasks_body({"tasks": []}), T0, True)
    assert stand(e, 0.0, 0, 30) == [] and e.tick(T0 + 9 * HOUR, True) == []


# ---- persistence -------------------------------------------------------------------------------


def test_snapshot_restore_continues_a_dwell_across_a_restart() -> None:
    e = engine(task("t", [cp("a", 0), cp("b", 200)], order="sequence"))
    stand(e, 0.0, 0, 6)
    data = json.loads(json.dumps(e.snapshot()))
    e2 = PatrolEngine()
    e2.restore(data)
    assert e2.tasks == e.tasks
    assert checkins(stand(e2, 0.0, 7, 10)) == [("t", "a", "gps")]
    assert e2.snapshot()["progress"]["t"]["checked"]["a"]["method"] == "gps"


def test_restore_rejects_garbage_and_changes_nothing() -> None:
    e = engine(task("t", [cp("a", 0)]))
    before = e.snapshot()
    for bad in [
        {},
        {"v": 2},
        {**before, "gate": None},
        {**before, "tasks": {"tasks": [{}]}},
        {**before, "progress": {"t": {"checked": {"a": {"method": "x", "at_ms": 1}}}}},
    ]:
        with pytest.raises(ConfigError):
            e.restore(bad)
    assert e.snapshot() == before


def test_without_position_sees_progress_but_not_the_moving_gate() -> None:
    # patrol.json is not rewritten for a gate that moved alone (agent/patrol/persistence.py).
    e = engine(task("t", [cp("a", 200)]))
    stand(e, 0.0, 0, 3)  # standing 200 m from "a": only the gate and the fix order move
    first = without_position(state_doc(e.snapshot(), ChainHead(None), None))
    stand(e, 0.0, 4, 6)
    assert e.snapshot()["gate"] != json.loads(first)["engine"].get("gate")
    assert without_position(state_doc(e.snapshot(), ChainHead(None), None)) == first
    stand(e, 200.0, 7, 9)  # a dwell run at "a" starts: progress changed
    assert without_position(state_doc(e.snapshot(), ChainHead(None), None)) != first
