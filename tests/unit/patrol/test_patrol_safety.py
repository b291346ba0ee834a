"""The worker's safety rules (agent/patrol/core/safety.py): plain cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.model import ModeProfile, parse
from agent.errors import ConfigError
from agent.patrol.core.safety import (
    TRAIL_MAX,
    Alarm,
    Answered,
    Context,
    Prompt,
    SafetyRules,
    SafetyWatch,
    dwell_here,
    parse_trail,
)
from firmware_bridge.geo import offset_deg

HERE = (34.7790, 113.7312)
T0 = 1_764_000_000_000
S = 1000
RULES = SafetyRules(still_ms=600 * S, grace_ms=60 * S, radius_m=10.0, trail_every_ms=0)
ON_TASK = Context(on_task=True, has_fix=True)


def at(north: float, east: float = 0.0) -> tuple[float, float]:
    return offset_deg(HERE[0], HERE[1], north, east)


def feed(w: SafetyWatch, north: float, t_s: int, *, acc: float = 4.0, east: float = 0.0) -> None:
    lat, lon = at(north, east)
    w.on_fix(lat, lon, acc, T0 + t_s * S, t_s * S, RULES)


def started() -> SafetyWatch:
    """A watch with a first fix at second 0 and its first tick there."""
    w = SafetyWatch()
    feed(w, 0, 0)
    w.tick(0, RULES, ON_TASK)
    return w


def run(
    w: SafetyWatch,
    until_s: int,
    ctx: Context = ON_TASK,
    rules: SafetyRules = RULES,
    *,
    start_s: int = 0,
) -> list[tuple[int, Prompt | Alarm]]:
    """Tick once a second from start_s up to until_s; what came out, with the second."""
    out: list[tuple[int, Prompt | Alarm]] = []
    for t in range(start_s, until_s + 1):
        got = w.tick(t * S, rules, ctx)
        if got is not None:
            out.append((t, got))
    return out


def test_a_worker_who_stops_is_prompted_after_the_still_time_then_alarmed_after_the_grace() -> None:
    w = SafetyWatch()
    feed(w, 0, 0)
    got = run(w, 700)
    assert [(t, type(x).__name__) for t, x in got] == [(600, "Prompt"), (660, "Alarm")]
    alarm = got[1][1]
    assert isinstance(alarm, Alarm) and alarm.kind == "man_down" and alarm.asked_ms == 600 * S
    assert alarm.trail == ((*at(0), T0),)
    # Latched: no second man_down while the worker still lies there.
    assert run(w, 5000, start_s=661) == []


def test_an_answer_ends_the_prompt_restarts_the_clock_and_is_reported() -> None:
    w = started()
    assert isinstance(w.tick(600 * S, RULES, ON_TASK), Prompt)
    assert w.tick(630 * S, RULES, ON_TASK) is None
    assert w.answer(640 * S, "page") == Answered("man_down", "page", 40 * S)
    assert w.pending is None and w.answer(641 * S, "page") is None
    assert w.tick(1000 * S, RULES, ON_TASK) is None  # 360 s since the answer
    assert isinstance(w.tick(1240 * S, RULES, ON_TASK), Prompt)


def test_movement_beyond_radius_plus_accuracy_resets_the_clock_jitter_does_not() -> None:
    w = SafetyWatch()
    feed(w, 0, 0, acc=4.0)
    w.tick(0, RULES, ON_TASK)
    # Jitter of a standing worker: 15 m away with 4 m fixes is within 10 + 4 + 4.
    for t in range(1, 599):
        feed(w, 15.0 if t % 2 else -3.0, t, acc=4.0)
    assert isinstance(w.tick(600 * S, RULES, ON_TASK), Prompt)
    w.answer(601 * S, "button")
    feed(w, 40.0, 700, acc=4.0)  # walked 40 m: moved
    assert w.tick(1250 * S, RULES, ON_TASK) is None
    assert isinstance(w.tick(1300 * S, RULES, ON_TASK), Prompt)


def test_a_touch_counts_as_life_and_unlatches_a_raised_man_down() -> None:
    w = started()
    w.touch(500 * S)
    assert w.tick(1000 * S, RULES, ON_TASK) is None
    assert isinstance(w.tick(1100 * S, RULES, ON_TASK), Prompt)
    assert isinstance(w.tick(1160 * S, RULES, ON_TASK), Alarm)
    assert w.tick(5000 * S, RULES, ON_TASK) is None  # latched
    w.touch(5001 * S)
    assert isinstance(w.tick(5601 * S, RULES, ON_TASK), Prompt)


def test_no_man_down_outside_tasks_without_a_fix_or_at_a_long_dwell_checkpoint() -> None:
    w = SafetyWatch()
    feed(w, 0, 0)
    assert run(w, 5000, Context(on_task=False, has_fix=True)) == []
    assert run(w, 5000, Context(on_task=True, has_fix=False)) == []
    # Indoors allowed by the config: the clock runs without a fix.
    indoors = SafetyRules(still_ms=600 * S, grace_ms=60 * S, without_fix=True)
    assert [t for t, _ in run(SafetyWatch(), 700, Context(True, False), indoors)] == [600, 660]
    # At a checkpoint whose dwell is 15 minutes, the still time starts after the dwell.
    dwelling = Context(on_task=True, has_fix=True, dwell_ms=900 * S)
    assert [t for t, _ in run(SafetyWatch(), 1600, dwelling)] == [1500, 1560]


def test_the_clock_starts_when_the_task_does() -> None:
    w = SafetyWatch()
    assert run(w, 1000, Context(False, True)) == []
    assert [t for t, _ in run(w, 1700, start_s=1001)] == [1600, 1660]
    # Off task until 1500 (no fix needed for that), on task from then: prompted at 2100.
    w2 = SafetyWatch()
    assert run(w2, 1500, Context(False, True)) == []
    assert [t for t, _ in run(w2, 2100, start_s=1501)] == [2100]


def test_lone_worker_check_per_interval_only_on_task_unless_always() -> None:
    rules = SafetyRules(check_every_ms=1800 * S, grace_ms=60 * S)
    w = SafetyWatch()
    got = run(w, 3700, ON_TASK, rules)
    assert [(t, type(x).__name__, x.kind) for t, x in got] == [
        (1800, "Prompt", "lone_worker"),
        (1860, "Alarm", "lone_worker"),
        (3660, "Prompt", "lone_worker"),
    ]
    assert run(SafetyWatch(), 4000, Context(False, False), rules) == []
    always = SafetyRules(check_every_ms=1800 * S, check_always=True, grace_ms=60 * S)
    assert [t for t, _ in run(SafetyWatch(), 1800, Context(False, False), always)] == [1800]


def test_an_answered_check_raises_nothing_and_the_next_comes_an_interval_later() -> None:
    rules = SafetyRules(check_every_ms=600 * S, grace_ms=60 * S)
    w = SafetyWatch()
    for t in range(0, 601):
        w.tick(t * S, rules, ON_TASK)
    assert w.pending is not None
    assert w.answer(620 * S, "button") == Answered("lone_worker", "button", 20 * S)
    # The next check an interval after the answer (and its alarm when that one is not).
    assert [t for t, _ in run(w, 1300, ON_TASK, rules, start_s=621)] == [1220, 1280]


def test_sos_cancels_a_pending_prompt() -> None:
    w = started()
    w.tick(600 * S, RULES, ON_TASK)
    assert w.cancel(610 * S) is not None
    assert w.tick(700 * S, RULES, ON_TASK) is None


def test_trail_keeps_the_last_20_points_spaced_and_ends_with_the_newest_fix() -> None:
    rules = SafetyRules(trail_every_ms=15 * S)
    w = SafetyWatch()
    for t in range(0, 600):
        lat, lon = at(t * 1.4)
        w.on_fix(lat, lon, 3.0, T0 + t * S, t * S, rules)
    trail = w.trail
    assert len(trail) == TRAIL_MAX
    assert [p[2] - T0 for p in trail] == [t * S for t in range(300, 600, 15)]
    assert w.trail_now()[-1] == (*at(599 * 1.4), T0 + 599 * S)
    assert len(w.trail_now()) == TRAIL_MAX
    # Back from JSON (restart): malformed points are left out.
    raw = [list(p) for p in trail] + [["x", 1, 2], [91.0, 0.0, 1], True]
    assert parse_trail(raw) == trail
    assert parse_trail(None) == () and SafetyWatch(parse_trail(raw)).trail == trail


def test_dwell_here_uses_radius_plus_accuracy() -> None:
    spots = [(*at(0), 25.0, 900.0), (*at(100), 25.0, 30.0)]
    assert dwell_here(spots, *at(28), 5.0) == 900_000
    assert dwell_here(spots, *at(40), 5.0) == 0
    assert dwell_here(spots, *at(95), 5.0) == 30_000


def test_config_is_off_by_default_and_strict() -> None:
    p = ModeProfile()
    assert p.lone_worker_every_s == 0 and p.man_down_after_s == 0
    assert p.lone_worker_during == "task"
    for bad in (
        {"lone_worker_every_s": 0.5},
        {"lone_worker_every_s": 30, "safety_grace_s": 60},
        {"man_down_after_s": -1},
        {"safety_grace_s": 0},
        {"lone_worker_during": "sometimes"},
        {"man_down": 600},
    ):
        with pytest.raises(ConfigError):
            parse(
                {
                    "device": {"id": "pd-1", "role": "patrol", "state_dir": "/tmp/x"},
                    "modes": {"profiles": {"normal": bad}},
                }
            )


# ----- properties -------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(["fix", "still", "touch", "answer", "tick", "off_task", "no_fix"]),
        st.integers(1, 120),
        st.floats(-30, 30),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_every_alarm_follows_its_own_unanswered_prompt_after_the_grace(
    script: list[tuple[str, int, float]],
) -> None:
    rules = SafetyRules(
        check_every_ms=300 * S, still_ms=200 * S, grace_ms=60 * S, trail_every_ms=10 * S
    )
    w = SafetyWatch()
    now = 0
    ctx = ON_TASK
    asked: Prompt | None = None
    for what, dt, north in script:
        now += dt * S
        if what in ("fix", "still"):
            lat, lon = at(north if what == "fix" else 0.0)
            w.on_fix(lat, lon, 4.0, T0 + now, now, rules)
        elif what == "touch":
            w.touch(now)
        elif what == "answer":
            if w.answer(now, "page") is not None:
                asked = None
        elif what == "off_task":
            ctx = Context(on_task=not ctx.on_task, has_fix=ctx.has_fix)
        elif what == "no_fix":
            ctx = Context(on_task=ctx.on_task, has_fix=not ctx.has_fix)
        got = w.tick(now, rules, ctx)
        if isinstance(got, Prompt):
            assert asked is None  # one prompt at a time
            asked = got
            assert got.deadline_ms == now + rules.grace_ms
        elif isinstance(got, Alarm):
            assert asked is not None and got.kind == asked.kind
            assert now >= asked.deadline_ms and got.asked_ms == asked.asked_ms
            assert len(got.trail) <= TRAIL_MAX
            assert [p[2] for p in got.trail] == sorted({p[2] for p in got.trail})
            asked = None
        assert w.pending == asked


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=400),
    st.floats(2.0, 8.0),
)
def test_jitter_within_the_fixes_accuracy_never_counts_as_movement(
    noise: list[float], acc: float
) -> None:
    # A standing worker: every fix within its own accuracy of the true spot.
    w = SafetyWatch()
    w.tick(0, RULES, ON_TASK)
    for i, u in enumerate(noise):
        north = (2 * u - 1) * acc
        lat, lon = at(north, 0.0)
        w.on_fix(lat, lon, acc, T0 + i * S, i * S, RULES)
        w.tick(i * S, RULES, ON_TASK)
    got = w.tick(600 * S, RULES, ON_TASK)
    assert isinstance(got, Prompt) and got.kind == "man_down"


def test_a_rule_switched_on_later_counts_from_then() -> None:
    # A mode change (e.g. to emergency) turns man-down on: no prompt for the time before.
    w = started()
    off = SafetyRules()
    assert not off.active
    assert run(w, 3000, Context(False, False), off, start_s=1) == []
    assert [t for t, _ in run(w, 3700, start_s=3001)] == [3600, 3660]
