"""PatrolEngine driven by hand: checkpoints north of C, tasks of an hour, fixes by second."""

from __future__ import annotations

from typing import Any

from agent.patrol.core import (
    CheckIn,
    CheckinParams,
    Decision,
    PatrolEngine,
    Progress,
    parse_tasks_body,
)
from firmware_bridge.geo import offset_deg
from firmware_bridge.types import Fix
from tests.kits.patrol import task

C = (30.2741, 120.1551)  # checkpoint "a"; "b" is 200 m north, "c" 400 m north, "d" 600 m north
T0 = 1_764_000_000_000
HOUR = 3_600_000

# Most rule tests pin exact dwell timing, so they run without reach; reach has its own tests.
NO_REACH = CheckinParams(reach_speed_mps=0.0)


# Positions are metres north (and east) of C, not the (lat, lon) of tests/kits/patrol.py: hence
# builders named apart from its `at`, `cp`, `task` and `stand`.
def near_c(north: float, east: float = 0.0) -> tuple[float, float]:
    """The (lat, lon) `north` m north and `east` m east of C."""
    return offset_deg(C[0], C[1], north, east)


def cp_north(
    cp_id: str,
    north: float,
    *,
    tags: list[str] | None = None,
    photo: bool = False,
    radius: float = 25.0,
    dwell: float = 10.0,
) -> dict[str, Any]:
    """One §6 checkpoint `north` m north of C, named after its id in capitals."""
    lat, lon = near_c(north)
    return {
        "id": cp_id,
        "name": cp_id.upper(),
        "lat": lat,
        "lon": lon,
        "radius_m": radius,
        "dwell_s": dwell,
        "tags": tags or [],
        "photo": photo,
    }


def hour_task(
    task_id: str,
    cps: list[dict[str, Any]],
    *,
    order: str = "any",
    start: int = T0,
    end: int = T0 + HOUR,
    staff: str | None = "s1",
) -> dict[str, Any]:
    """One §6 task, by default open for the hour from T0."""
    return task(task_id, cps, order=order, start=start, end=end, staff=staff)


def engine(*tasks: dict[str, Any], params: CheckinParams | None = None) -> PatrolEngine:
    """An engine over `tasks`; without `params`, reach is off (NO_REACH)."""
    return PatrolEngine(parse_tasks_body({"tasks": list(tasks)}), params or NO_REACH)


def fix(
    north: float,
    t_s: float,
    *,
    east: float = 0.0,
    acc: float | None = 3.0,
    valid: bool = True,
    hdop: float | None = 0.9,
) -> Fix:
    """A 3D fix `north` m north of C, `t_s` seconds after T0 (and after boot)."""
    lat, lon = near_c(north, east)
    return Fix(
        valid=valid,
        utc_ms=T0 + int(t_s * 1000),
        lat=lat,
        lon=lon,
        fix="3d",
        sats=9,
        hdop=hdop,
        acc_m=acc,
        mono_ms=int(t_s * 1000),
    )


def feed_fixes(
    e: PatrolEngine, north: float, t_from: float, t_to: float, **kw: Any
) -> list[Decision]:
    """One fix a second at `north` from `t_from` to `t_to` s (inclusive); the decisions."""
    out: list[Decision] = []
    t = t_from
    while t <= t_to:
        out += e.on_fix(fix(north, t, **kw), T0 + int(t * 1000), True)
        t += 1.0
    return out


def checkins(ds: list[Decision]) -> list[tuple[str, str, str]]:
    """(task, checkpoint, method) of each check-in among `ds`."""
    return [(d.task_id, d.checkpoint_id, d.method) for d in ds if isinstance(d, CheckIn)]


def events(ds: list[Decision]) -> list[tuple[str, str, str | None, int, int]]:
    """The progress events among `ds`: (task, event, checkpoint, done, total)."""
    return [
        (d.task_id, d.event, d.checkpoint_id, d.done, d.total)
        for d in ds
        if isinstance(d, Progress)
    ]
