"""The outbox's SQLite file: schema, opening with WAL and a check, quarantine of a damaged one."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    hist INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    grp TEXT
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox(priority, rowid);
CREATE INDEX IF NOT EXISTS outbox_grp ON outbox(grp) WHERE grp IS NOT NULL;
-- A copy of journalled messages, committed with the outbox row and kept after its PUBACK
-- until their producer has saved its own state (agent/patrol_state.py). Outside the budget.
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL
);
-- The seq high-water mark moves with the insert itself: no extra statement per commit.
CREATE TRIGGER IF NOT EXISTS outbox_seq AFTER INSERT ON outbox WHEN NEW.seq IS NOT NULL
BEGIN
    INSERT INTO meta(k, v) VALUES('seq', NEW.seq)
        ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v);
END;
"""


async def open_checked(path: Path) -> tuple[aiosqlite.Connection | None, str | None]:
    """Open (creating) and check the database: (connection, None) or (None, what is wrong)."""
    conn: aiosqlite.Connection | None = None
    try:
        # IMMEDIATE: the first write of a batch takes the write lock (no upgrade deadlock);
        # one commit() per batch keeps thread hops to two.
        conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE")
        # WAL + FULL: a commit is on disk when it returns, also across power loss.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.executescript(SCHEMA)
        rows = [r[0] for r in await conn.execute_fetchall("PRAGMA quick_check")]
        if rows != ["ok"]:
            problem = "quick_check: " + "; ".join(str(r) for r in rows[:3])
        else:
            await conn.execute_fetchall("SELECT count(*) FROM outbox")
            return conn, None
    except sqlite3.DatabaseError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if conn is not None:
        try:
            await conn.close()
        except sqlite3.Error as exc:
            log.warning("closing the damaged database: %s", exc)
    return None, problem


def quarantine(path: Path, problem: str) -> str:
    """Move a damaged database (and its -wal/-shm) aside, kept; return the new file name."""
    log.error("outbox database %s is damaged (%s); moving it aside", path, problem)
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.rename(target.with_name(target.name + suffix))
    return target.name


async def meta(conn: aiosqlite.Connection, key: str) -> int | None:
    """A value of the meta table."""
    rows = list(await conn.execute_fetchall("SELECT v FROM meta WHERE k=?", (key,)))
    return int(rows[0][0]) if rows else None


async def counts(conn: aiosqlite.Connection) -> tuple[int, int]:
    """(rows, bytes) stored."""
    rows = list(await conn.execute_fetchall("SELECT count(*), coalesce(sum(size),0) FROM outbox"))
    return int(rows[0][0]), int(rows[0][1])


@dataclass(frozen=True, slots=True)
class Journalled:
    """A journalled message (Outbox.append(journal=True)): its seq, kind and exact bytes."""

    seq: int
    kind: str
    payload: bytes


async def journal_insert(
    conn: aiosqlite.Connection, rows: Sequence[tuple[int, str, bytes]]
) -> None:
    """Add (seq, kind, payload) rows inside the caller's open transaction."""
    if rows:
        await conn.executemany("INSERT INTO journal(seq, kind, payload) VALUES (?,?,?)", rows)


async def journal_after(
    conn: aiosqlite.Connection, after_seq: int | None, kind: str
) -> list[Journalled]:
    """Journal rows of `kind` with seq > after_seq (all when None), in seq order."""
    rows = await conn.execute_fetchall(
        "SELECT seq, kind, payload FROM journal WHERE seq > ? AND kind = ? ORDER BY seq",
        (-1 if after_seq is None else after_seq, kind),
    )
    return [Journalled(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]
