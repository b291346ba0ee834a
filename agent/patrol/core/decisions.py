"""What the patrol engine decided: frozen values the driver turns into outbox events or feedback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from firmware_bridge.types import Fix

Method = Literal["gps", "nfc", "manual"]
ProgressEvent = Literal["started", "checkpoint_missed", "completed", "overdue"]
IgnoredReason = Literal["not_active", "resolved"]
NoReachReason = Literal["no_active_task", "out_of_reach", "no_fix", "ambiguous"]
Ended = Literal["completed", "overdue"]


@dataclass(frozen=True, slots=True)
class CheckIn:
    """A check-in (one per checkpoint per task); becomes a §4 `checkin` event."""

    task_id: str
    checkpoint_id: str
    staff_id: str | None
    method: Method
    fix: Fix | None  # gps: the run's latest fix inside; nfc, manual: the current one
    dist_m: float | None  # from `fix` to the checkpoint centre
    acc_m: float | None  # accuracy the engine judged `fix` with (acc_m, else hdop x UERE)
    tag_uid: str | None  # upper-case hex, nfc only
    needs_photo: bool  # manual always; otherwise the checkpoint's `photo`
    at_ms: int  # the caller's now_ms when decided
    deciding: Fix | None = None  # gps: the fix that decided (reach: may be later than `fix`)

    def to_body(self) -> dict[str, Any]:
        """The §4 checkin body except `photos` and `prev`, which the driver adds."""
        f = self.fix
        return {
            "task_id": self.task_id,
            "checkpoint_id": self.checkpoint_id,
            "staff_id": self.staff_id,
            "method": self.method,
            "lat": f.lat if f else None,
            "lon": f.lon if f else None,
            "acc_m": round(self.acc_m, 1) if f and self.acc_m is not None else None,
            "fix": f.fix if f else "none",
            "sats": f.sats if f else None,
            "hdop": f.hdop if f else None,
            "gps_ts": f.utc_ms if f else None,
            "dist_m": round(self.dist_m, 1) if self.dist_m is not None else None,
            "tag_uid": self.tag_uid,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """A patrol progress event (§4 `patrol`); done = checked-in count, total = checkpoints."""

    task_id: str
    event: ProgressEvent
    checkpoint_id: str | None  # only for checkpoint_missed
    done: int
    total: int
    at_ms: int

    def to_body(self) -> dict[str, Any]:
        """The §4 patrol body."""
        return {
            "task_id": self.task_id,
            "event": self.event,
            "checkpoint_id": self.checkpoint_id,
            "done": self.done,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class UnknownTag:
    """A scanned tag that no checkpoint lists: tell the person "not a checkpoint"; no event."""

    uid: str


@dataclass(frozen=True, slots=True)
class TagIgnored:
    """A checkpoint's tag that cannot check in now: task not active, or checkpoint resolved."""

    uid: str
    task_id: str
    checkpoint_id: str
    reason: IgnoredReason


@dataclass(frozen=True, slots=True)
class NoCheckpointInReach:
    """A manual check-in was refused; nearest_* name the closest candidate when a fix placed it."""

    reason: NoReachReason
    nearest_task_id: str | None = None
    nearest_checkpoint_id: str | None = None
    nearest_dist_m: float | None = None


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """Where a task stands, for a display: counts, end state and the next checkpoint in order."""

    task_id: str
    done: int
    missed: int
    total: int
    started: bool
    ended: Ended | None
    next_checkpoint_id: str | None


Decision = CheckIn | Progress | UnknownTag | TagIgnored | NoCheckpointInReach
