"""Validation of the §6 tasks body at the edge: strict types, no unknown keys, key-path errors."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agent.errors import ConfigError
from agent.patrol.core.tasks import Checkpoint, Task, TaskSet

# NFC UIDs are 4, 7 or 10 bytes; any 4..10-byte hex string is accepted, compared in upper case.
_Uid = Annotated[str, StringConstraints(pattern=r"^(?:[0-9A-Fa-f]{2}){4,10}$")]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_Text = Annotated[str, StringConstraints(max_length=256)]
_Ms = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    # strict: no "1" -> 1 or true -> 1 coercion; a central bug must show up as invalid_body.
    # defer_build: built by the first task document, not by an idle device's imports (issue 22).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class CheckpointModel(_Strict):
    """One §6 checkpoint."""

    id: _Id
    name: _Text
    lat: Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]
    radius_m: Annotated[float, Field(gt=0.0, le=10_000.0, allow_inf_nan=False)]
    dwell_s: Annotated[float, Field(ge=0.0, le=86_400.0, allow_inf_nan=False)]
    tags: Annotated[list[_Uid], Field(max_length=64)]
    photo: bool


class TaskModel(_Strict):
    """One §6 task; every key is required, staff_id may be null."""

    id: _Id
    name: _Text
    staff_id: _Id | None
    start_ms: _Ms
    end_ms: _Ms
    order: Literal["any", "sequence"]
    checkpoints: Annotated[list[CheckpointModel], Field(min_length=1, max_length=1000)]


class TasksBody(_Strict):
    """The §6 tasks body: the whole set, replacing the last one."""

    tasks: Annotated[list[TaskModel], Field(max_length=1000)]


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _cross_checks(body: TasksBody) -> list[tuple[str, str]]:
    # Rules pydantic field types cannot express, reported with the exact key path.
    problems: list[tuple[str, str]] = []
    seen_tasks: set[str] = set()
    for i, task in enumerate(body.tasks):
        if task.id in seen_tasks:
            problems.append((f"tasks[{i}].id", f"duplicate task id {task.id!r}"))
        seen_tasks.add(task.id)
        if task.end_ms <= task.start_ms:
            problems.append((f"tasks[{i}].end_ms", "must be after start_ms"))
        seen_cps: set[str] = set()
        for j, cp in enumerate(task.checkpoints):
            if cp.id in seen_cps:
                problems.append(
                    (f"tasks[{i}].checkpoints[{j}].id", f"duplicate checkpoint id {cp.id!r}")
                )
            seen_cps.add(cp.id)
    return problems


def _to_taskset(body: TasksBody) -> TaskSet:
    return TaskSet(
        tasks=tuple(
            Task(
                id=t.id,
                name=t.name,
                staff_id=t.staff_id,
                start_ms=t.start_ms,
                end_ms=t.end_ms,
                order=t.order,
                checkpoints=tuple(
                    Checkpoint(
                        id=c.id,
                        name=c.name,
                        lat=float(c.lat),
                        lon=float(c.lon),
                        radius_m=float(c.radius_m),
                        dwell_s=float(c.dwell_s),
                        # Upper case per §4 tag_uid; duplicates dropped, first order kept.
                        tags=tuple(dict.fromkeys(u.upper() for u in c.tags)),
                        photo=c.photo,
                    )
                    for c in t.checkpoints
                ),
            )
            for t in body.tasks
        )
    )


def parse_tasks_body(body: object) -> TaskSet:
    """Validate a §6 tasks body (already JSON-decoded); ConfigError lists (key path, reason)."""
    if not isinstance(body, dict):
        raise ConfigError([("body", "must be a JSON object")])
    try:
        model = TasksBody.model_validate(body)
    except ValidationError as exc:
        raise ConfigError([(_path(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    problems = _cross_checks(model)
    if problems:
        raise ConfigError(problems)
    return _to_taskset(model)
