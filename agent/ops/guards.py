"""What a push would do, checked before anything is sent (pure: the inventory is passed in).

Every push (and its `--dry-run`) runs the same checks. A finding either warns or stops the
push: it stops when it predicts a rejection or a loss (a device that will refuse the document,
a zone no device announces, patrol tasks for a camera gateway, a config that strips devices of
a wired part). `--force` turns stops into warnings.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.config.mergepatch import leaves, removed_parts
from agent.config.role_sections import ROLE_SECTIONS, foreign_sections
from agent.ops.devices import DeviceRow


@dataclass(frozen=True, slots=True)
class Findings:
    """What the checks found: lines that warn, lines that stop the push unless --force."""

    warnings: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)


def zone_findings(zone: str, known: set[str]) -> list[str]:
    """A zone no device announces: a retained document for it would wait for nobody."""
    if zone in known:
        return []
    near = difflib.get_close_matches(zone, sorted(known), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    listed = ", ".join(sorted(known)) or "none"
    return [f"no device announces zone {zone}{hint}; zones announced: {listed}"]


def role_findings(
    typ: str, body: Mapping[str, Any], devs: Sequence[str], inv: Mapping[str, DeviceRow]
) -> list[str]:
    """Documents a device of that role cannot run: tasks on a camera gateway (it would ack a
    set it never runs), a snapshot of a named camera on a patrol device (it refuses it)."""
    roles = {dev: inv[dev].role for dev in devs if dev in inv}
    if typ == "tasks":
        return [
            f"{dev}: a {role} device; tasks are for patrol devices"
            for dev, role in roles.items()
            if role not in (None, "patrol")
        ]
    args = body.get("args")
    if typ == "cmd" and isinstance(args, Mapping) and args.get("camera_id"):
        return [
            f"{dev}: a patrol device has one camera and takes no camera_id: it will reject "
            "the command"
            for dev, role in roles.items()
            if role == "patrol"
        ]
    return []


def rejections(body: Mapping[str, Any], row: DeviceRow) -> list[str]:
    """What makes a device refuse a config body (§6): another role."""
    device = body.get("device")
    role = device.get("role") if isinstance(device, Mapping) else None
    if row.role is not None and role is not None and role != row.role:
        return [f"role {role} but the device is {row.role}: it will reject the document"]
    return []


def parts_findings(body: Mapping[str, Any], roles: set[str | None]) -> list[str]:
    """A fleet document that removes a configured part takes it off every device it reaches.

    `roles`: of the devices it goes to (None: not known). A part of another role does not
    count (a whole patrol agent.toml carries `cameras = []`).
    """
    known = set(ROLE_SECTIONS) if None in roles else {r for r in roles if r is not None}
    parts = [
        p
        for p in removed_parts(body)
        if not (owners := {r for r, s in ROLE_SECTIONS.items() if p.split(".")[0] in s})
        or owners & known
    ]
    if not parts:
        return []
    return [
        f"the document removes {', '.join(parts)} from every device it reaches (a device's "
        "own wiring); leave them out to keep each device's own"
    ]


def offline_line(typ: str, offline: Sequence[str]) -> str | None:
    """How many picked devices are offline, and when they get the document."""
    if not offline:
        return None
    when = (
        "they get it when they return, unless it has expired by then"
        if typ == "cmd"
        else "the document stays retained: they apply it when they return"
    )
    return f"{len(offline)} offline ({', '.join(offline)}): {when}"


def config_preview(body: Mapping[str, Any], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Per device class (role): what the document sets and removes; the rest stays the file's."""
    out: list[str] = []
    for role, devs in sorted(groups.items()):
        foreign = set(foreign_sections(role, body)) if role != "unknown" else set()
        out.append(f"what changes on {role} devices ({len(devs)}: {', '.join(devs)}):")
        for path, value in leaves(body):
            if path[0] in foreign:
                continue
            key = ".".join(path)
            out.append(f"  {key}: removed" if value is None else f"  {key} = {json.dumps(value)}")
        if foreign:
            out.append(f"  ignored there: {', '.join(sorted(foreign))}")
        out.append("  every other key keeps each device's own file (or default)")
    return out
