"""Per-task progress of the patrol engine (check-ins, misses, dwell runs) and its JSON form."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError
from agent.patrol.core.decisions import Ended, Method
from agent.patrol.core.geofence import (
    DwellRun,
    FixOrder,
    Gate,
    fix_from_json,
    fix_to_json,
    gate_from_json,
    gate_to_json,
)
from agent.patrol.core.schema import parse_tasks_body
from agent.patrol.core.tasks import TaskSet
from firmware_bridge.types import Fix


@dataclass(slots=True)
class TaskProgress:
    """Mutable state of one task, owned by one engine; its JSON form is docs/checkin.md §9."""

    started: bool = False
    ended: Ended | None = None
    checked: dict[str, tuple[Method, int]] = field(default_factory=dict)  # cp -> (method, at_ms)
    missed: dict[str, int] = field(default_factory=dict)  # cp -> at_ms
    runs: dict[str, DwellRun] = field(default_factory=dict)  # cp -> live dwell run
    # cp -> the run's latest inside/likely fix: the position a check-in reports.
    seen_in: dict[str, Fix] = field(default_factory=dict)
    # cp -> fix time last seen confidently outside: reach never credits time before it.
    out_at: dict[str, int] = field(default_factory=dict)

    def resolved(self, cp_id: str) -> bool:
        """Checked in or missed: nothing more happens at this checkpoint."""
        return cp_id in self.checked or cp_id in self.missed

    def forget_live(self, cp_id: str) -> None:
        """A checkpoint now resolved: its dwell run, seen-in fix and outside time are moot."""
        self.runs.pop(cp_id, None)
        self.seen_in.pop(cp_id, None)
        self.out_at.pop(cp_id, None)

    def carry_live(self, prev: TaskProgress, cp_id: str) -> None:
        """Take `prev`'s live state of an unchanged checkpoint (a new task set, same place)."""
        if cp_id in prev.runs:
            self.runs[cp_id] = prev.runs[cp_id]
            if cp_id in prev.seen_in:
                self.seen_in[cp_id] = prev.seen_in[cp_id]
        if cp_id in prev.out_at:
            self.out_at[cp_id] = prev.out_at[cp_id]

    def apply_checkin(self, cp_id: str, method: Method, at_ms: int) -> None:
        """A check-in stored before a crash that the last snapshot did not see."""
        self.started = True
        self.checked[cp_id] = (method, at_ms)
        self.missed.pop(cp_id, None)
        self.forget_live(cp_id)

    def apply_event(self, event: str, cp_id: str | None, at_ms: int) -> bool:
        """A stored progress event the last snapshot did not see; False when it changes nothing."""
        if event == "started":
            self.started = True
        elif event == "checkpoint_missed" and cp_id is not None and cp_id not in self.checked:
            self.missed[cp_id] = at_ms
            self.forget_live(cp_id)
        elif event in _ENDED and event is not None:
            self.ended = _ENDED[event]
        else:
            return False
        return True

    def state_of(self, cp_id: str) -> str:
        """`checked`, `missed` or `open`."""
        return "checked" if cp_id in self.checked else "missed" if cp_id in self.missed else "open"

    def to_json(self) -> dict[str, Any]:
        """The snapshot's progress entry of this task."""
        return {
            "started": self.started,
            "ended": self.ended,
            "checked": {c: {"method": m, "at_ms": t} for c, (m, t) in self.checked.items()},
            "missed": dict(self.missed),
            "runs": {c: _run_to_json(r) for c, r in self.runs.items()},
            "seen_in": {c: fix_to_json(f) for c, f in self.seen_in.items()},
            "out_at": dict(self.out_at),
        }

    @staticmethod
    def from_json(raw: Mapping[str, Any], ids: Collection[str]) -> TaskProgress:
        """Inverse of to_json, keeping checkpoint ids in `ids`; KeyError/TypeError/ValueError."""
        if raw.get("ended") not in _ENDED:
            raise ValueError(f"bad ended {raw.get('ended')!r}")
        return TaskProgress(
            started=bool(raw.get("started", False)),
            ended=_ENDED[raw.get("ended")],
            checked={
                c: (_method(v["method"]), int(v["at_ms"]))
                for c, v in raw.get("checked", {}).items()
                if c in ids
            },
            missed={c: int(t) for c, t in raw.get("missed", {}).items() if c in ids},
            runs={c: _run_from_json(r) for c, r in raw.get("runs", {}).items() if c in ids},
            # Absent from snapshots written before they were kept: empty, as after a restart then.
            seen_in={
                c: f
                for c, f in ((c, fix_from_json(v)) for c, v in raw.get("seen_in", {}).items())
                if c in ids and f is not None
            },
            out_at={c: int(t) for c, t in raw.get("out_at", {}).items() if c in ids},
        )


def _run_to_json(r: DwellRun) -> list[int | bool]:
    return [r.start_ms, r.last_ms, r.confirmed, r.lead_ms, r.until_ms, r.seen_ms]


def _run_from_json(r: list[Any]) -> DwellRun:
    # Three items: a snapshot from before reach (no lead, reach ended at the last fix).
    start, last, confirmed = int(r[0]), int(r[1]), bool(r[2])
    if len(r) == 3:
        return DwellRun(start, last, confirmed, 0, last, last)
    return DwellRun(start, last, confirmed, int(r[3]), int(r[4]), int(r[5]))


_METHODS: dict[object, Method] = {"gps": "gps", "nfc": "nfc", "manual": "manual"}
_ENDED: dict[object, Ended | None] = {None: None, "completed": "completed", "overdue": "overdue"}


def _method(value: object) -> Method:
    if value not in _METHODS:
        raise ValueError(f"bad method {value!r}")
    return _METHODS[value]


SNAPSHOT_VERSION = 1


def dump_snapshot(
    tasks: TaskSet, progress: Mapping[str, TaskProgress], gate: Gate, order: FixOrder
) -> dict[str, Any]:
    """The engine's JSON-serialisable state (the format is the engine's own: docs/checkin.md)."""
    return {
        "v": SNAPSHOT_VERSION,
        "tasks": tasks.to_body(),
        "progress": {tid: pr.to_json() for tid, pr in progress.items()},
        "gate": gate_to_json(gate),
        "order": order.to_json(),
    }


def load_snapshot(
    data: Mapping[str, Any],
) -> tuple[TaskSet, dict[str, TaskProgress], Gate, FixOrder]:
    """Inverse of dump_snapshot; ConfigError naming the problem when malformed."""
    try:
        if data["v"] != SNAPSHOT_VERSION:
            raise ValueError(f"unknown snapshot version {data['v']!r}")
        tasks = parse_tasks_body(data["tasks"])
        progress: dict[str, TaskProgress] = {}
        for task in tasks.tasks:
            raw = data["progress"].get(task.id) or {}
            ids = {cp.id for cp in task.checkpoints}
            progress[task.id] = TaskProgress.from_json(raw, ids)
        gate = gate_from_json(data["gate"])
        order = FixOrder.from_json(data["order"])
    except ConfigError as exc:
        raise ConfigError([(f"snapshot.tasks.{p}", r) for p, r in exc.problems]) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ConfigError([("snapshot", f"{type(exc).__name__}: {exc}")]) from None
    return tasks, progress, gate, order
