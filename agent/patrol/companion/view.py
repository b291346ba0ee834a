"""What the page shows of the patrol: progress per task and the next checkpoint. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from firmware_bridge.geo import bearing_deg, distance_m


def progress(tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each task with counts of checked, missed and open checkpoints, and how it ended."""
    out = []
    for t in tasks:
        states = [str(cp.get("state")) for cp in t.get("checkpoints", [])]
        ended = t.get("ended")
        out.append(
            {
                "id": t.get("id"),
                "name": t.get("name"),
                "order": t.get("order"),
                "start_ms": t.get("start_ms"),
                "end_ms": t.get("end_ms"),
                "ended": None if ended is None else str(ended),
                "total": len(states),
                "checked": states.count("checked"),
                "missed": states.count("missed"),
                "checkpoints": [
                    {"id": cp.get("id"), "name": cp.get("name"), "state": cp.get("state")}
                    for cp in t.get("checkpoints", [])
                ],
            }
        )
    return out


def checkin_methods(cp: Mapping[str, Any]) -> list[str]:
    """How this checkpoint can be checked in: gps (geofence + dwell), nfc (a listed tag), manual."""
    methods = ["gps"]
    if cp.get("tags"):
        methods.append("nfc")
    methods.append("manual")
    return methods


def next_checkpoint(
    tasks: Sequence[Mapping[str, Any]], here: tuple[float, float] | None
) -> dict[str, Any] | None:
    """The open checkpoint to go to next, with distance (m) and bearing (deg) from `here`.

    A sequence task offers its first open checkpoint; an "any" task every open one. Among the
    candidates of tasks still running the nearest wins (the first listed without a position).
    """
    candidates: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for t in tasks:
        if t.get("ended") is not None:
            continue
        open_cps = [cp for cp in t.get("checkpoints", []) if cp.get("state") == "open"]
        if t.get("order") == "sequence":
            open_cps = open_cps[:1]
        candidates += [(t, cp) for cp in open_cps]
    if not candidates:
        return None

    def dist(item: tuple[Mapping[str, Any], Mapping[str, Any]]) -> float:
        cp = item[1]
        if here is None:
            return 0.0
        return distance_m(here[0], here[1], float(cp["lat"]), float(cp["lon"]))

    task, cp = min(candidates, key=dist)
    out: dict[str, Any] = {
        "task_id": task.get("id"),
        "task_name": task.get("name"),
        "id": cp.get("id"),
        "name": cp.get("name"),
        "radius_m": cp.get("radius_m"),
        "dwell_s": cp.get("dwell_s"),
        "photo": bool(cp.get("photo")),
        "methods": checkin_methods(cp),
        "dist_m": None,
        "bearing_deg": None,
    }
    if here is not None:
        lat, lon = float(cp["lat"]), float(cp["lon"])
        out["dist_m"] = round(distance_m(here[0], here[1], lat, lon), 1)
        out["bearing_deg"] = round(bearing_deg(here[0], here[1], lat, lon)) % 360
    return out
