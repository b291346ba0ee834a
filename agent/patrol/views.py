"""What the patrol driver shows: decision outcomes, the manual check-in answer, status views."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.patrol.core import CheckIn, Decision, NoCheckpointInReach, PatrolEngine, TaskSet
from firmware_bridge.types import Fix
from sync.messages import Stored


@dataclass(frozen=True, slots=True)
class Outcome:
    """One engine decision and the event that stored it (None: no event, or it is queued)."""

    decision: Decision
    stored: Stored | None


def manual_answer(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The check-in button's answer: {"checked_in": true, ids, queued} or {false, reason}.

    `queued`: the outbox refused it for now; it is stored later (id and seq null here).
    """
    for o in outcomes:
        d = o.decision
        if isinstance(d, CheckIn):
            return {
                "checked_in": True,
                "task_id": d.task_id,
                "checkpoint_id": d.checkpoint_id,
                "id": None if o.stored is None else o.stored.id,
                "seq": None if o.stored is None else o.stored.seq,
                "queued": o.stored is None,  # a check-in always has an event: it waits
            }
        if isinstance(d, NoCheckpointInReach):
            dist = None if d.nearest_dist_m is None else round(d.nearest_dist_m, 1)
            return {
                "checked_in": False,
                "reason": d.reason,
                "nearest_checkpoint_id": d.nearest_checkpoint_id,
                "nearest_dist_m": dist,
            }
    return {"checked_in": False, "reason": "no_active_task"}


def checkin_notice(
    d: CheckIn, stored: Stored, photos: Sequence[dict[str, Any]], tasks: TaskSet
) -> dict[str, Any]:
    """What listeners (the companion page) hear of a stored check-in; photos by SHA-256.

    `checkpoint_name` is the name the worker knows it by (the id when the task set lacks it).
    """
    task = tasks.task(d.task_id)
    cps = task.checkpoints if task is not None else ()
    name = next((c.name for c in cps if c.id == d.checkpoint_id), d.checkpoint_id)
    return {
        "type": "checkin",
        "task_id": d.task_id,
        "checkpoint_id": d.checkpoint_id,
        "checkpoint_name": name,
        "method": d.method,
        "seq": stored.seq,
        "photos": [p["sha256"] for p in photos],
    }


def gps_section(fix: Fix | None, acc: float | None, latest: Fix | None) -> dict[str, Any]:
    """The §8 status `gps` section from the current usable fix and the newest fix of any kind."""
    return {
        "fix": fix.fix if fix is not None else "none",
        "sats": latest.sats if latest is not None else None,
        "acc_m": None if acc is None else round(acc, 1),
    }


def tasks_view(engine: PatrolEngine, ver: object) -> dict[str, Any]:
    """The task set with each checkpoint's state (open, checked, missed) and each task's end."""
    out = []
    for task in engine.tasks.tasks:
        states, ended = engine.view(task.id)
        cps = [{**cp.to_body(), "state": states[cp.id]} for cp in task.checkpoints]
        out.append({**task.to_body(), "checkpoints": cps, "ended": ended})
    return {"ver": ver, "tasks": out}
