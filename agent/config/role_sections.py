"""Which config sections belong to which device role (pure; check-config and ops use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROLE_SECTIONS: dict[str, frozenset[str]] = {
    "patrol": frozenset({"gps", "nfc", "buttons", "camera", "patrol"}),
    "camera_gateway": frozenset({"cameras", "alarm_http"}),
}


def foreign_sections(role: str, data: Mapping[str, Any]) -> list[str]:
    """Sections `data` fills in that only the other role uses (empty values do not count)."""
    from agent.patrol.config import PatrolConfig

    # [patrol] has defaults, so a whole config dumped from a model carries it on any role.
    defaults = {"patrol": PatrolConfig().model_dump(mode="json")}
    mine = ROLE_SECTIONS.get(role, frozenset())
    others = frozenset().union(*ROLE_SECTIONS.values()) - mine
    return sorted(
        s for s in others if data.get(s) not in (None, [], {}, defaults.get(s)) and s in data
    )
