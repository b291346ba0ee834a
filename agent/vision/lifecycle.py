"""Pure event lifecycle: conditions over time become start/update/end with one track id each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from agent.vision.rules import Condition, Key, Marked

State = Literal["start", "update", "end"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Update rate limit, grace before an end, and quiet time after an end (seconds)."""

    update_min_s: float = 5.0
    end_after_s: float = 3.0
    cooldown_s: float = 60.0


@dataclass(frozen=True, slots=True)
class Transition:
    """One detection event to publish; times are in the caller's clock (seconds)."""

    state: State
    track: str
    rule: str
    zone: str | None
    count: int
    score: float
    boxes: tuple[Marked, ...]
    started_t: float
    ended_t: float | None
    t: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """An event that has started and not ended."""

    track: str
    started_t: float
    last_seen: float
    last_emit: float
    emitted_count: int
    latest: Condition


@dataclass(frozen=True, slots=True)
class LifecycleState:
    """Open events, cool-downs per (rule, zone), and the counter behind track ids."""

    prefix: str
    open: Mapping[Key, OpenEvent] = field(default_factory=dict)
    quiet_until: Mapping[Key, float] = field(default_factory=dict)
    next_seq: int = 1


def _sort_key(key: Key) -> tuple[str, str]:
    return (key[0], key[1] or "")


def _transition(state: State, ev: OpenEvent, c: Condition, t: float) -> Transition:
    return Transition(
        state=state,
        track=ev.track,
        rule=c.rule,
        zone=c.zone,
        count=c.count,
        score=c.score,
        boxes=c.boxes,
        started_t=ev.started_t,
        ended_t=ev.last_seen if state == "end" else None,
        t=t,
        detail=c.detail,
    )


def step(
    state: LifecycleState, conditions: Sequence[Condition], t: float, timing: Timing
) -> tuple[LifecycleState, tuple[Transition, ...]]:
    """Advance to time t given the conditions holding now; return the new state and events."""
    present: dict[Key, Condition] = {(c.rule, c.zone): c for c in conditions}
    open_events = dict(state.open)
    quiet = {k: until for k, until in state.quiet_until.items() if until > t}
    seq = state.next_seq
    out: list[Transition] = []
    for key in sorted(set(open_events) | set(present), key=_sort_key):
        cond = present.get(key)
        ev = open_events.get(key)
        if ev is not None and cond is None:
            if t - ev.last_seen >= timing.end_after_s:
                out.append(_transition("end", ev, ev.latest, t))
                del open_events[key]
                # Cool-down runs from the end, so a flapping condition cannot storm central.
                quiet[key] = t + timing.cooldown_s
        elif ev is not None and cond is not None:
            ev = replace(ev, last_seen=t if cond.seen is None else cond.seen, latest=cond)
            if cond.count != ev.emitted_count and t - ev.last_emit >= timing.update_min_s:
                ev = replace(ev, last_emit=t, emitted_count=cond.count)
                out.append(_transition("update", ev, cond, t))
            open_events[key] = ev
        elif cond is not None and key not in quiet:
            ev = OpenEvent(
                track=f"{state.prefix}-{seq}",
                started_t=min(cond.since, t),
                last_seen=t if cond.seen is None else cond.seen,
                last_emit=t,
                emitted_count=cond.count,
                latest=cond,
            )
            seq += 1
            open_events[key] = ev
            out.append(_transition("start", ev, cond, t))
    return LifecycleState(state.prefix, open_events, quiet, seq), tuple(out)


def close_all(state: LifecycleState, t: float) -> tuple[LifecycleState, tuple[Transition, ...]]:
    """End every open event now (shutdown); cool-downs are kept."""
    out = tuple(
        _transition("end", ev, ev.latest, t)
        for key, ev in sorted(state.open.items(), key=lambda kv: _sort_key(kv[0]))
    )
    return LifecycleState(state.prefix, {}, state.quiet_until, state.next_seq), out
