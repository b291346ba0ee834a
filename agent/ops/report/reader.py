"""Reads the `ops archive` database (agent/ops/archive/schema.sql, SQLite) for report and alerts.

Only the columns docs/central.md promises are read: `events(dev, kind, ts, payload)` and
`states(dev, received_ms, payload)`. The file is opened read-only, so a report never competes
with the archiver for the write lock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

from agent.errors import ConfigError
from agent.ops.report.events import Event, from_payload


class ArchiveReader:
    """Events by kind and time, and each device's zones from its last state (context manager)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError([(str(path), "no archive database here (see ops archive --db)")])
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._db.close()

    def events(self, kinds: Collection[str], since_ms: int, until_ms: int) -> list[Event]:
        """Events of these kinds with since_ms <= ts < until_ms, in (dev, ts) order."""
        marks = ",".join("?" * len(kinds))
        try:
            rows = self._db.execute(
                f"SELECT dev, payload FROM events WHERE kind IN ({marks}) "
                "AND ts >= ? AND ts < ? ORDER BY dev, ts",
                (*kinds, since_ms, until_ms),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise ConfigError([("archive", f"cannot read events: {exc}")]) from None
        return [e for dev, payload in rows if (e := from_payload(dev, payload)) is not None]

    def zones(self) -> dict[str, tuple[str, ...]]:
        """Each device's zones, from the last state it published (births list them)."""
        try:
            rows = self._db.execute(
                "SELECT dev, payload FROM states ORDER BY received_ms"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}  # an archive without states yet: every device is in no zone
        out: dict[str, tuple[str, ...]] = {}
        for dev, payload in rows:
            zones = _zones(payload)
            if zones is not None:
                out[dev] = zones
        return out


def _zones(payload: str | bytes) -> tuple[str, ...] | None:
    try:
        state = json.loads(payload)
    except ValueError:
        return None
    zones = state.get("zones") if isinstance(state, dict) else None
    if not isinstance(zones, list):
        return None
    return tuple(z for z in zones if isinstance(z, str))
