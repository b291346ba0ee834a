"""The alerts journal (SQLite): each alert once by key, every delivery attempt, each outcome.

Blocking; the delivery side calls it through `asyncio.to_thread`. An alert is written before
any attempt, so one that was raised but not yet delivered when the service stopped is pending
at the next start and delivered then (`pending`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

from agent.ops.alerts.rules import Alert

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY, rule TEXT NOT NULL, dev TEXT NOT NULL, ts BIGINT NOT NULL,
    severity INTEGER NOT NULL, facts TEXT NOT NULL, text TEXT NOT NULL, raised_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL, sink TEXT NOT NULL, n INTEGER NOT NULL, ok BOOLEAN NOT NULL,
    detail TEXT NOT NULL, at_ms BIGINT NOT NULL, PRIMARY KEY (key, sink, n));
CREATE TABLE IF NOT EXISTS outcomes (
    key TEXT NOT NULL, sink TEXT NOT NULL, outcome TEXT NOT NULL, at_ms BIGINT NOT NULL,
    PRIMARY KEY (key, sink));
"""


class Journal:
    """One SQLite file; safe to call from the worker threads of `asyncio.to_thread`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._db.close()

    def claim(self, alert: Alert, words: str, now_ms: int) -> bool:
        """Record a new alert; False when its key was raised before (a duplicate)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?)",
                (
                    alert.key,
                    alert.rule,
                    alert.dev,
                    alert.ts,
                    alert.severity,
                    json.dumps(dict(alert.facts), ensure_ascii=False),
                    words,
                    now_ms,
                ),
            )
            return cur.rowcount == 1

    def attempt(self, key: str, sink: str, n: int, ok: bool, detail: str, now_ms: int) -> None:
        """One delivery attempt (n from 1)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO attempts VALUES (?,?,?,?,?,?)",
                (key, sink, n, ok, detail, now_ms),
            )

    def outcome(self, key: str, sink: str, outcome: str, now_ms: int) -> None:
        """`delivered` or `gave_up`: the alert is no longer pending for this sink."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?,?,?,?)", (key, sink, outcome, now_ms)
            )

    def pending(self, sink: str, since_ms: int) -> list[Alert]:
        """Alerts raised since `since_ms` with no outcome for this sink yet, oldest first
        (the bound keeps a webhook added later from receiving the journal's whole past)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, rule, dev, ts, severity, facts FROM alerts WHERE raised_ms >= ? "
                "AND key NOT IN (SELECT key FROM outcomes WHERE sink = ?) ORDER BY raised_ms, key",
                (since_ms, sink),
            ).fetchall()
        return [Alert(k, r, d, t, s, json.loads(f)) for k, r, d, t, s, f in rows]

    def attempts(self, key: str, sink: str) -> list[tuple[int, bool, str]]:
        """(n, ok, detail) of every attempt, in order (for `ops alerts` tests and audits)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT n, ok, detail FROM attempts WHERE key = ? AND sink = ? ORDER BY n",
                (key, sink),
            ).fetchall()
        return [(n, bool(ok), detail) for n, ok, detail in rows]
