"""The outbox's SQLite file: schema, opening with WAL and a check, quarantine, eviction, journal."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from sync.messages import PROTECTED
from sync.ordering import RowInfo, choose_evictions

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
-- until their producer has saved its own state (agent/patrol/persistence.py). Outside the budget.
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


async def evict(
    conn: aiosqlite.Connection, need: int
) -> tuple[list[RowInfo], list[dict[str, Any]]]:
    """Delete the rows §7 says go first, inside the caller's open transaction.

    Returns the rows deleted and the bodies of eviction notices among them (their news is
    carried into the next notice).
    """
    sql = (
        "SELECT rowid, priority, size, kind, seq, grp FROM outbox WHERE priority > ?"
        " ORDER BY priority DESC, rowid ASC LIMIT 256"
    )
    async with conn.execute(sql, (int(PROTECTED),)) as cur:
        cands = [RowInfo(r[0], r[1], r[2], r[3], r[4], r[5]) async for r in cur]
    groups = {c.group for c in cands if c.group is not None}
    for grp in groups:
        async with conn.execute(
            "SELECT rowid, priority, size, kind, seq, grp FROM outbox WHERE grp=?", (grp,)
        ) as cur:
            known = {c.rowid for c in cands}
            cands += [RowInfo(*r) async for r in cur if r[0] not in known]
    chosen = choose_evictions(cands, need)
    earlier: list[dict[str, Any]] = []
    for r in chosen:
        if r.kind == "notice":
            # An eviction notice about to go: its news moves into the next one.
            rows = await conn.execute_fetchall(
                "SELECT payload FROM outbox WHERE rowid=?", (r.rowid,)
            )
            body = json.loads(bytes(next(iter(rows))[0]))["body"]
            if body.get("type") == "outbox_evicted":
                earlier.append(body)
    if chosen:
        await conn.executemany("DELETE FROM outbox WHERE rowid=?", [(r.rowid,) for r in chosen])
    return chosen, earlier


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
