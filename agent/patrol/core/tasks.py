"""The patrol task set of contract §6 as frozen values; parsing lives in `schema`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Order = Literal["any", "sequence"]


def normalize_uid(uid: str) -> str:
    """Upper-case hex without separators, as §4 tag_uid and the task set use it."""
    return "".join(ch for ch in uid if ch not in ": -").upper()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One place to visit: a disc of radius_m held for dwell_s, or one of its NFC tags."""

    id: str
    name: str
    lat: float
    lon: float
    radius_m: float
    dwell_s: float
    tags: tuple[str, ...]  # upper-case hex UIDs
    photo: bool

    def to_body(self) -> dict[str, Any]:
        """The §6 JSON form of this checkpoint."""
        return {
            "id": self.id,
            "name": self.name,
            "lat": self.lat,
            "lon": self.lon,
            "radius_m": self.radius_m,
            "dwell_s": self.dwell_s,
            "tags": list(self.tags),
            "photo": self.photo,
        }


@dataclass(frozen=True, slots=True)
class Task:
    """One patrol: its checkpoints in document order, its window [start_ms, end_ms)."""

    id: str
    name: str
    staff_id: str | None
    start_ms: int
    end_ms: int
    order: Order
    checkpoints: tuple[Checkpoint, ...]

    @property
    def total(self) -> int:
        """Number of checkpoints (the `total` of patrol events)."""
        return len(self.checkpoints)

    def checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        """The checkpoint with this id, or None."""
        for cp in self.checkpoints:
            if cp.id == checkpoint_id:
                return cp
        return None

    def is_active(self, now_ms: int, time_ok: bool) -> bool:
        """In its window by the agent's best time; always while time is not known right (§6)."""
        return (not time_ok) or self.start_ms <= now_ms < self.end_ms

    def is_over(self, now_ms: int, time_ok: bool) -> bool:
        """The window has ended; never true while time is not known right."""
        return time_ok and now_ms >= self.end_ms

    def to_body(self) -> dict[str, Any]:
        """The §6 JSON form of this task."""
        return {
            "id": self.id,
            "name": self.name,
            "staff_id": self.staff_id,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "order": self.order,
            "checkpoints": [cp.to_body() for cp in self.checkpoints],
        }


@dataclass(frozen=True, slots=True)
class TaskSet:
    """The whole task set of the latest applied tasks document (empty = no patrol)."""

    tasks: tuple[Task, ...] = ()

    def task(self, task_id: str) -> Task | None:
        """The task with this id, or None."""
        for task in self.tasks:
            if task.id == task_id:
                return task
        return None

    def to_body(self) -> dict[str, Any]:
        """The §6 tasks body; parse_tasks_body(to_body()) gives an equal TaskSet."""
        return {"tasks": [task.to_body() for task in self.tasks]}
