"""Readers of the archive for the report: `ops archive`'s database, or `ops watch --archive` files.

Both give the same two things: events by kind and time (`events`), and each device's zones from
its last state (`zones`). From the database only the columns docs/central.md promises are read
(`events(dev, kind, ts, payload)`, `states(dev, received_ms, payload)`); the file is opened
read-only, so a report never competes with the archiver for the write lock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

from agent.errors import ConfigError
from agent.ops.report.events import Event, from_payload
from agent.ops.watch import read_archive


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


class WatchArchiveReader:
    """The same reads over an `ops watch --archive DIR` (JSON lines), for a one-machine setup."""

    def __init__(self, directory: Path) -> None:
        self._events: list[Event] = []
        self._zones: dict[str, tuple[str, ...]] = {}
        for msg in read_archive(directory):
            parts = msg.topic.split("/")
            if len(parts) < 4 or parts[:2] != ["grid", "v1"]:
                continue
            what = "/".join(parts[3:])
            if what == "state" and (zones := _zones(msg.payload)) is not None:
                self._zones[parts[2]] = zones
            elif what == "ack" or (what.startswith("evt/") and len(parts) == 5):
                event = from_payload(parts[2], msg.payload)
                if event is not None:
                    self._events.append(event)

    def __enter__(self) -> WatchArchiveReader:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        return None

    def events(self, kinds: Collection[str], since_ms: int, until_ms: int) -> list[Event]:
        """Events of these kinds with since_ms <= ts < until_ms, once per (dev, id)."""
        seen: dict[tuple[str, str], Event] = {}
        for e in self._events:
            if e.kind in kinds and since_ms <= e.ts < until_ms:
                seen.setdefault((e.dev, e.id), e)  # the archive keeps duplicates; the report not
        return sorted(seen.values(), key=lambda e: (e.dev, e.ts))

    def zones(self) -> dict[str, tuple[str, ...]]:
        """Each device's zones, from the last state in the archive."""
        return dict(self._zones)
