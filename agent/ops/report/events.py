"""Archived messages as the report and the alerts read them (frozen; no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One `evt/*` or `ack` message: its envelope fields and its body."""

    dev: str
    kind: str
    id: str
    ts: int
    body: dict[str, Any] = field(default_factory=dict)
    hist: bool = False


def from_payload(dev: str, payload: str | bytes) -> Event | None:
    """A published grid/v1 envelope -> an Event; None when it is not one (never raises)."""
    try:
        env = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(env, dict):
        return None
    kind, ident, ts, body = env.get("kind"), env.get("id"), env.get("ts"), env.get("body")
    if not (isinstance(kind, str) and isinstance(ident, str) and isinstance(body, dict)):
        return None
    if isinstance(ts, bool) or not isinstance(ts, int):
        return None
    return Event(dev, kind, ident, ts, body, env.get("hist") is True)
