"""The outbox's SQLite file: opening with WAL and a check, quarantine, eviction, the journal,
the reads. Blocking functions on a plain `sqlite3.Connection`, run on the outbox's writer or
reader thread (never on the event loop); the layout is in sync/outbox_schema.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync import outbox_schema
from sync.messages import PROTECTED
from sync.ordering import RowInfo, choose_evictions
from sync.outbox_rows import MAX_PRIORITY, Row
from sync.outbox_schema import SHIFT

log = logging.getLogger(__name__)


def rowid_of(priority: int, n: int) -> int:
    """The rowid of the `n`-th append at `priority`: rowid order is send order."""
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority {priority} outside 0..{MAX_PRIORITY}")
    return priority << SHIFT | n


def after_rowid(cursor: tuple[int, int]) -> int:
    """Rows after the (priority, rowid) cursor are exactly those with a larger rowid."""
    priority, rowid = cursor
    return max(rowid, (max(priority, 0) << SHIFT) - 1) if priority >= 0 else rowid


def open_checked(path: Path) -> tuple[sqlite3.Connection | None, str | None]:
    """Open (creating, upgrading) and check the database: (connection, None) or (None, why)."""
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path)
        outbox_schema.create_or_upgrade(conn)
        rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        if rows != ["ok"]:
            problem = "quick_check: " + "; ".join(str(r) for r in rows[:3])
        else:
            conn.execute("SELECT count(*) FROM outbox").fetchall()
            return conn, None
    except sqlite3.DatabaseError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error as exc:
            log.warning("closing the damaged database: %s", exc)
    return None, problem


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the outbox's settings; transactions are explicit (BEGIN IMMEDIATE)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # WAL + FULL: a commit is on disk when it returns, also across power loss.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    # FAST: deleted content is zeroed only inside pages written anyway (no extra page writes;
    # Debian builds default to ON, which rewrites every freed chunk page).
    conn.execute("PRAGMA secure_delete=FAST")
    # Keep the WAL file from growing without bound after a burst (it is reused from its start).
    conn.execute("PRAGMA journal_size_limit=4194304")
    return conn


def quarantine(path: Path, problem: str) -> str:
    """Move a damaged database (and its -wal/-shm) aside, kept; return the new file name."""
    log.error("outbox database %s is damaged (%s); moving it aside", path, problem)
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        src = path.with_name(path.name + suffix)
        if src.exists():
            src.rename(target.with_name(target.name + suffix))
    return target.name


def meta(conn: sqlite3.Connection, key: str) -> int | None:
    """A value of the meta table."""
    row = conn.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
    return int(row[0]) if row else None


def last_seq(conn: sqlite3.Connection) -> int | None:
    """The highest seq the file knows: in a row (a seq holder included), or in meta (a
    database of the first layout)."""
    row = conn.execute("SELECT max(seq) FROM outbox").fetchone()
    known = [v for v in (meta(conn, "seq"), row[0] if row else None) if v is not None]
    return max(known) if known else None


def last_number(conn: sqlite3.Connection) -> int:
    """The highest arrival number among the rows (0 when empty)."""
    row = conn.execute(f"SELECT max(rowid & {(1 << SHIFT) - 1}) FROM outbox").fetchone()
    return int(row[0] or 0)


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(rows, bytes) waiting for a PUBACK."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(size),0) FROM outbox WHERE acked=0"
    ).fetchone()
    return int(row[0]), int(row[1])


def delete_acked(
    conn: sqlite3.Connection, rowids: Sequence[int], top: int
) -> tuple[int, int, int | None, list[int]]:
    """Take PUBACKed rows out of the queue inside the open transaction: deleted, or kept as
    journal (acked = 1) when journalled. The row holding `top` (the last seq given out) is not
    deleted but emptied into a seq holder: the high-water mark stays in the page being written
    anyway instead of a meta page per commit.

    Returns (rows, bytes) no longer waiting, the rowid of the new holder, if one, and the seqs
    of the messages the broker now has (chunks have none).
    """
    marks = ",".join("?" * len(rowids))
    free = f"rowid IN ({marks}) AND acked = 0 AND jrnl = 0"
    args = (*rowids, top)
    gone = conn.execute(
        f"DELETE FROM outbox WHERE {free} AND seq IS NOT ? RETURNING size, seq", args
    ).fetchall()
    held = conn.execute(
        f"UPDATE outbox SET acked = 1, payload = x'' WHERE {free} AND seq IS ?"
        " RETURNING rowid, size, seq",
        args,
    ).fetchall()
    kept = conn.execute(
        f"UPDATE outbox SET acked = 1 WHERE rowid IN ({marks}) AND acked = 0 RETURNING size, seq",
        tuple(rowids),
    ).fetchall()
    rows = len(gone) + len(held) + len(kept)
    size = sum(r[0] for r in gone) + sum(r[1] for r in held) + sum(r[0] for r in kept)
    seqs = [r[-1] for r in (*gone, *held, *kept) if r[-1] is not None]
    return rows, size, held[0][0] if held else None, seqs


def holders(conn: sqlite3.Connection) -> list[int]:
    """The rows kept only to hold a seq high-water mark (acknowledged, not journalled)."""
    return [r[0] for r in conn.execute("SELECT rowid FROM outbox WHERE acked = 1 AND jrnl = 0")]


def delete_rows(conn: sqlite3.Connection, rowids: Sequence[int]) -> None:
    """Delete these rows inside the open transaction."""
    if rowids:
        conn.execute(f"DELETE FROM outbox WHERE rowid IN ({','.join('?' * len(rowids))})", rowids)


def evict(conn: sqlite3.Connection, need: int) -> tuple[list[RowInfo], list[dict[str, Any]]]:
    """Delete the rows §7 says go first, inside the caller's open transaction.

    Returns the rows deleted and the bodies of eviction notices among them (their news is
    carried into the next notice). Journalled rows are never evicted.
    """
    cands = _eviction_candidates(conn)
    chosen = choose_evictions(cands, need)
    earlier: list[dict[str, Any]] = []
    for r in chosen:
        if r.kind == "notice":
            # An eviction notice about to go: its news moves into the next one.
            row = conn.execute("SELECT payload FROM outbox WHERE rowid=?", (r.rowid,)).fetchone()
            body = json.loads(bytes(row[0]))["body"]
            if body.get("type") == "outbox_evicted":
                earlier.append(body)
    if chosen:
        # The eviction notice stored in the same transaction takes a higher seq than these.
        conn.executemany("DELETE FROM outbox WHERE rowid=?", [(r.rowid,) for r in chosen])
    return chosen, earlier


_CANDIDATE = "SELECT rowid, priority, size, kind, seq, grp FROM outbox"


def _eviction_candidates(conn: sqlite3.Connection) -> list[RowInfo]:
    """Up to 256 rows, lowest priority and oldest first, plus their photos' other rows."""
    cands: list[RowInfo] = []
    for prio in sorted((p for p in priorities(conn) if p > PROTECTED), reverse=True):
        if len(cands) >= 256:
            break
        lo, hi = prio << SHIFT, (prio + 1) << SHIFT
        sql = f"{_CANDIDATE} WHERE rowid >= ? AND rowid < ? AND acked = 0 AND jrnl = 0"
        rows = conn.execute(f"{sql} ORDER BY rowid LIMIT ?", (lo, hi, 256 - len(cands)))
        cands += [RowInfo(*r) for r in rows]
    known = {c.rowid for c in cands}
    for grp in {c.group for c in cands if c.group is not None}:
        rows = conn.execute(f"{_CANDIDATE} WHERE grp=? AND acked = 0", (grp,))
        cands += [RowInfo(*r) for r in rows if r[0] not in known]
    return cands


def oldest_ms(conn: sqlite3.Connection, priorities: Iterable[int]) -> int | None:
    """Creation time of the oldest row waiting (the first of each priority is its oldest)."""
    found: list[int] = []
    for prio in priorities:
        row = conn.execute(
            "SELECT created_ms FROM outbox WHERE rowid >= ? AND rowid < ? AND acked = 0"
            " ORDER BY rowid LIMIT 1",
            (prio << SHIFT, (prio + 1) << SHIFT),
        ).fetchone()
        if row is not None:
            found.append(int(row[0]))
    return min(found) if found else None


def priorities(conn: sqlite3.Connection) -> list[int]:
    """The priorities present (one index seek per priority)."""
    out: list[int] = []
    lo = 0
    while True:
        row = conn.execute("SELECT rowid FROM outbox WHERE rowid >= ? LIMIT 1", (lo,)).fetchone()
        if row is None:
            return out
        out.append(int(row[0]) >> SHIFT)
        lo = (out[-1] + 1) << SHIFT


@dataclass(frozen=True, slots=True)
class Journalled:
    """A journalled message (Outbox.append(journal=True)): its seq, kind and exact bytes."""

    seq: int
    kind: str
    payload: bytes


def journal_after(conn: sqlite3.Connection, after_seq: int | None, kind: str) -> list[Journalled]:
    """Journalled rows of `kind` with seq > after_seq (all when None), in seq order."""
    rows = conn.execute(
        "SELECT seq, kind, payload FROM outbox WHERE jrnl = 1 AND seq > ? AND kind = ?"
        " ORDER BY seq",
        (-1 if after_seq is None else after_seq, kind),
    ).fetchall()
    return [Journalled(int(r[0]), str(r[1]), bytes(r[2])) for r in rows]


def journal_release(conn: sqlite3.Connection, up_to: int, keep: int | None, top: int) -> int | None:
    """Journalled rows with seq <= up_to except `keep` stop being journal, inside the open
    transaction: acknowledged ones go (the one holding `top` becomes the seq holder: its rowid
    is returned), queued ones are deleted after their PUBACK like any other row."""
    free = "jrnl = 1 AND seq <= ? AND seq IS NOT ?"
    conn.execute(f"UPDATE outbox SET jrnl = 0 WHERE {free} AND acked = 0", (up_to, keep))
    conn.execute(
        f"DELETE FROM outbox WHERE {free} AND acked = 1 AND seq IS NOT ?", (up_to, keep, top)
    )
    held = conn.execute(
        f"UPDATE outbox SET jrnl = 0, payload = x'' WHERE {free} AND acked = 1 AND seq IS ?"
        " RETURNING rowid",
        (up_to, keep, top),
    ).fetchall()
    return held[0][0] if held else None


def fetch(
    conn: sqlite3.Connection, after: tuple[int, int], limit: int, live_only: bool
) -> list[Row]:
    """Rows waiting, after the (priority, rowid) cursor, in send order (§7)."""
    where = "rowid > ? AND acked = 0" + (" AND hist = 0" if live_only else "")
    rows = conn.execute(
        f"SELECT rowid, priority, topic, payload, size, hist, grp FROM outbox WHERE {where}"
        " ORDER BY rowid LIMIT ?",
        (after_rowid(after), limit),
    ).fetchall()
    return [Row(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]


def groups_present(conn: sqlite3.Connection, groups: Sequence[str]) -> set[str]:
    """Which of these media groups still have rows waiting for a PUBACK."""
    present: set[str] = set()
    for i in range(0, len(groups), 500):
        part = list(groups[i : i + 500])
        marks = ",".join("?" * len(part))
        sql = f"SELECT DISTINCT grp FROM outbox WHERE grp IN ({marks}) AND acked = 0"
        present.update(r[0] for r in conn.execute(sql, part))
    return present
