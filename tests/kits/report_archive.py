"""A SQLite archive as `ops archive` leaves it, filled with the contract's event bodies.

The tables carry the columns of agent/ops/archive/schema.sql that readers rely on
(docs/central.md); the envelopes are built by sync/envelope.py, as a device builds them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync import envelope

_TABLES = """
CREATE TABLE IF NOT EXISTS events (
    dev TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, seq BIGINT, boot TEXT, ts BIGINT,
    time_ok BOOLEAN, hist BOOLEAN, received_ms BIGINT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (dev, id));
CREATE TABLE IF NOT EXISTS states (
    dev TEXT NOT NULL, digest TEXT NOT NULL, online BOOLEAN, bdseq BIGINT, ts BIGINT,
    received_ms BIGINT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (dev, digest));
"""


def checkin_body(
    task: str, cp: str, staff: str | None, pos: tuple[float, float] | None, method: str = "gps"
) -> dict[str, Any]:
    """A §4 checkin body; no position means an NFC/manual check-in without a fix."""
    lat, lon = pos if pos is not None else (None, None)
    fix = pos is not None
    return {
        "task_id": task,
        "checkpoint_id": cp,
        "staff_id": staff,
        "method": method if fix else "nfc",
        "lat": lat,
        "lon": lon,
        "acc_m": 4.0 if fix else None,
        "fix": "3d" if fix else "none",
        "sats": 9 if fix else None,
        "hdop": 0.9 if fix else None,
        "gps_ts": 0 if fix else None,
        "dist_m": 3.0 if fix else None,
        "tag_uid": None if fix else "04A1B2C3",
        "photos": [],
        "prev": None,
    }


def patrol_body(task: str, event: str, cp: str | None, done: int, total: int) -> dict[str, Any]:
    """A §4 patrol body."""
    return {"task_id": task, "event": event, "checkpoint_id": cp, "done": done, "total": total}


@dataclass
class FakeArchive:
    """Events and states to write; `add` numbers each device's seq as a device does."""

    seqs: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    states: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, dev: str, kind: str, ts: int, body: dict[str, Any]) -> str:
        seq = self.seqs[dev] = self.seqs.get(dev, 0) + 1
        msg_id = envelope.uuid7(ts)
        stamp = envelope.TimeStamp(ts, "gps", True, "boot-1", ts % 10**9)
        payload = envelope.envelope(
            kind=kind, msg_id=msg_id, dev=dev, seq=seq, stamp=stamp, hist=False, body=body
        ).decode()
        self.rows.append((dev, msg_id, kind, seq, "boot-1", ts, 1, 0, ts + 50, payload))
        return msg_id

    def birth(self, dev: str, ts: int, zones: list[str]) -> None:
        payload = envelope.birth(
            bdseq=1,
            boot="boot-1",
            ts=ts,
            agent="0.1.0",
            role="patrol",
            config_ver=None,
            tasks_ver=None,
            mode="normal",
            zones=zones,
        )
        digest = hashlib.sha256(payload).hexdigest()
        self.states.append((dev, digest, 1, 1, ts, ts, payload.decode()))

    def write(self, path: Path) -> Path:
        with sqlite3.connect(path) as db:
            db.executescript(_TABLES)
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", self.rows)
            db.executemany("INSERT INTO states VALUES (?,?,?,?,?,?,?)", self.states)
        db.close()
        return path
