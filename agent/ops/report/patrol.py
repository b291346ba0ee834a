"""The day's patrol report: a pure function of the tasks and the archived events.

Rows are per grid (the device's narrowest zone from its last birth), task, worker and device.
Definitions (docs/central.md, "The day's patrol report"):
- checked: distinct checkpoints of the task with a `checkin` event that day;
- missed: checkpoints the device reported `checkpoint_missed`, and, once the task's window has
  ended (as of the report's time), every checkpoint still unchecked; a checked one is never
  missed;
- late: check-ins stamped at or after the task's end (possible while the device's clock was not
  known to be right, when every task counts as active, §6);
- completed/overdue: the device's `patrol` events of that name for the task;
- distance: straight lines between consecutive check-ins that carry a GPS position, in time
  order: a lower bound of the walk (NFC and manual check-ins have no position).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise

from agent.ops.report.events import Event
from agent.patrol.core.tasks import Task, TaskSet
from firmware_bridge.geo import distance_m

CHINA_TZ = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Day:
    """[start_ms, end_ms) of one local calendar day."""

    start_ms: int
    end_ms: int

    @classmethod
    def of(cls, day: date, tz: timezone = CHINA_TZ) -> Day:
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        ms = int(start.timestamp() * 1000)
        return cls(ms, ms + 86_400_000)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the report."""

    zone: str
    task_id: str
    task_name: str
    staff: str
    dev: str
    total: int
    checked: int
    missed: int
    late: int
    completed: bool
    overdue: bool
    first_ms: int | None
    last_ms: int | None
    distance_m: float


@dataclass(frozen=True, slots=True)
class CheckpointMark:
    """A checkpoint on the map, with how the day went there: checked, missed or open."""

    task_id: str
    id: str
    name: str
    lat: float
    lon: float
    radius_m: float
    status: str


@dataclass(frozen=True, slots=True)
class CheckinMark:
    """A check-in with a GPS position, on the map."""

    task_id: str
    checkpoint_id: str
    dev: str
    staff: str
    ts: int
    lat: float
    lon: float
    method: str
    dist_m: float | None


@dataclass(frozen=True, slots=True)
class Report:
    rows: tuple[Row, ...]
    checkpoints: tuple[CheckpointMark, ...]
    checkins: tuple[CheckinMark, ...]


def grid_of(zones: Sequence[str]) -> str:
    """The narrowest zone a device follows (most cells), '' when it names none."""
    return max(zones, key=lambda z: (z.count("."), z), default="")


def in_zone(zones: Sequence[str], wanted: str) -> bool:
    """A device is in zone Z when it follows Z or a zone inside Z."""
    return any(z == wanted or z.startswith(wanted + ".") for z in zones)


def _position(body: Mapping[str, object]) -> tuple[float, float] | None:
    lat, lon = body.get("lat"), body.get("lon")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        return float(lat), float(lon)
    return None


def walked_m(checkins: Iterable[Event]) -> float:
    """Straight lines between consecutive positioned check-ins, in time order."""
    points = [p for e in sorted(checkins, key=lambda e: e.ts) if (p := _position(e.body))]
    return sum(distance_m(*a, *b) for a, b in pairwise(points))


def _reported_missed(events: Iterable[Event]) -> set[str]:
    return {
        str(e.body.get("checkpoint_id"))
        for e in events
        if e.kind == "patrol" and e.body.get("event") == "checkpoint_missed"
    }


def _checked(events: Iterable[Event]) -> set[str]:
    return {str(e.body.get("checkpoint_id")) for e in events if e.kind == "checkin"}


def _missed(task: Task, events: Sequence[Event], as_of_ms: int) -> set[str]:
    ids = {cp.id for cp in task.checkpoints}
    missed = _reported_missed(events) & ids
    if task.end_ms <= as_of_ms:
        missed |= ids
    return missed - _checked(events)


def _row(task: Task, dev: str, zone: str, events: Sequence[Event], as_of_ms: int) -> Row:
    checkins = [e for e in events if e.kind == "checkin"]
    patrol = [str(e.body.get("event")) for e in events if e.kind == "patrol"]
    staff = Counter(str(e.body["staff_id"]) for e in checkins if e.body.get("staff_id"))
    times = [e.ts for e in checkins]
    return Row(
        zone=zone,
        task_id=task.id,
        task_name=task.name,
        staff=staff.most_common(1)[0][0] if staff else (task.staff_id or ""),
        dev=dev,
        total=len(task.checkpoints),
        checked=len(_checked(events) & {cp.id for cp in task.checkpoints}),
        missed=len(_missed(task, events, as_of_ms)),
        late=sum(1 for e in checkins if e.ts >= task.end_ms),
        completed="completed" in patrol,
        overdue="overdue" in patrol,
        first_ms=min(times, default=None),
        last_ms=max(times, default=None),
        distance_m=round(walked_m(checkins), 1),
    )


def _marks(task: Task, events: Sequence[Event], as_of_ms: int) -> list[CheckpointMark]:
    """Each checkpoint of the task: checked by any device, else missed, else still open."""
    checked, missed = _checked(events), _missed(task, events, as_of_ms)
    out: list[CheckpointMark] = []
    for cp in task.checkpoints:
        status = "checked" if cp.id in checked else "missed" if cp.id in missed else "open"
        out.append(CheckpointMark(task.id, cp.id, cp.name, cp.lat, cp.lon, cp.radius_m, status))
    return out


def _checkin_marks(events: Sequence[Event], staff: str) -> list[CheckinMark]:
    out: list[CheckinMark] = []
    for e in events:
        pos = _position(e.body) if e.kind == "checkin" else None
        if pos is None:
            continue
        dist = e.body.get("dist_m")
        out.append(
            CheckinMark(
                task_id=str(e.body.get("task_id")),
                checkpoint_id=str(e.body.get("checkpoint_id")),
                dev=e.dev,
                staff=str(e.body.get("staff_id") or staff),
                ts=e.ts,
                lat=pos[0],
                lon=pos[1],
                method=str(e.body.get("method")),
                dist_m=float(dist) if isinstance(dist, int | float) else None,
            )
        )
    return out


def patrol_report(
    tasks: TaskSet,
    events: Iterable[Event],
    zones: Mapping[str, Sequence[str]],
    day: Day,
    as_of_ms: int,
    zone: str | None = None,
) -> Report:
    """The report of `day` for every task whose window overlaps it (only `zone`'s devices).

    A task no device reported on that day gets one row with an empty device (nobody walked
    it), unless a zone was asked for (the task's zone is not known without a device).
    """
    today = {t.id: t for t in tasks.tasks if t.start_ms < day.end_ms and t.end_ms > day.start_ms}
    by_key: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        task_id = e.body.get("task_id")
        wanted = zone is None or in_zone(zones.get(e.dev, ()), zone)
        that_day = day.start_ms <= e.ts < day.end_ms
        if e.kind in ("checkin", "patrol") and task_id in today and wanted and that_day:
            by_key[(str(task_id), e.dev)].append(e)
    devs_of: dict[str, list[str]] = defaultdict(list)
    for task_id, dev in sorted(by_key):
        devs_of[task_id].append(dev)
    rows: list[Row] = []
    marks: list[CheckpointMark] = []
    pins: list[CheckinMark] = []
    for task in today.values():
        devs = devs_of.get(task.id, [])
        if not devs and zone is not None:
            continue
        task_rows = [
            _row(task, d, grid_of(zones.get(d, ())), by_key[(task.id, d)], as_of_ms) for d in devs
        ] or [_row(task, "", "", [], as_of_ms)]
        rows.extend(task_rows)
        task_events = [e for d in devs for e in by_key[(task.id, d)]]
        marks.extend(_marks(task, task_events, as_of_ms))
        pins.extend(_checkin_marks(task_events, task.staff_id or ""))
    rows.sort(key=lambda r: (r.zone, r.task_id, r.staff, r.dev))
    return Report(tuple(rows), tuple(marks), tuple(sorted(pins, key=lambda p: (p.dev, p.ts))))
