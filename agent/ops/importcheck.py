"""Pure warnings for imported tasks: windows already over, radii too small for GPS check-in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from agent.ops.checkpoints import Imported, TaskSpec
from agent.patrol.core.geofence import CheckinParams

# A receiver that reports only HDOP, in open sky, typically says about 1.0.
TYPICAL_HDOP = 1.0
_RULE = CheckinParams()  # the tuned defaults a device runs unless [patrol] changes k_hold


def typical_acc_m(params: CheckinParams = _RULE) -> float:
    """Accuracy the check-in rule assumes for a typical HDOP-only fix (docs/checkin.md §2)."""
    return max(params.acc_floor_m, TYPICAL_HDOP * params.uere_m)


def min_gps_radius_m(params: CheckinParams = _RULE) -> float:
    """Smallest radius in which a typical fix can start a dwell run (docs/checkin.md §4).

    A fix of someone standing at the centre lands about one accuracy away from it (d = acc);
    it counts as "likely" inside only when d + k_stay·acc <= r, so r >= (1 + k_stay)·acc.
    """
    return (1.0 + params.k_stay) * typical_acc_m(params)


def warnings(spec: TaskSpec, points: Sequence[Imported], now_ms: int) -> list[str]:
    """What will not work as the operator probably expects (the import still succeeds)."""
    out: list[str] = []
    if spec.end_ms <= now_ms:
        end = datetime.fromtimestamp(spec.end_ms / 1000, UTC).isoformat(timespec="minutes")
        out.append(
            f"task {spec.id}: its window already ended ({end}); the devices will never make it "
            "active (give --start/--end in the future)"
        )
    smallest = min_gps_radius_m()
    acc = typical_acc_m()
    for p in points:
        radius = float(p.checkpoint["radius_m"])
        if radius >= smallest:
            continue
        how = (
            "only its NFC tag can check in there"
            if p.checkpoint.get("tags")
            else f"give it an NFC tag, or a radius of at least {smallest:g} m"
        )
        out.append(
            f"{p.where}: radius {radius:g} m is below {smallest:g} m, the smallest in which a "
            f"GPS fix of typical accuracy ({acc:g} m, HDOP-only receiver) can check in "
            f"(docs/checkin.md §4): {how}"
        )
    return out
