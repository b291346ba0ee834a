"""The outbox file's schema, and moving a database of the first layout (AUTOINCREMENT rowids,
an order index, a separate journal table, a seq trigger) into it.

A row's rowid is `priority << SHIFT | n`, `n` counting appends: the table's own B-tree is
the send order (§7), and an append dirties only the last leaf of its priority (no order
index, no AUTOINCREMENT counter page, no trigger). A journalled row stays after its PUBACK
with `acked = 1` until `journal_release` (no second copy in another table).
"""

from __future__ import annotations

import sqlite3

SHIFT = 48  # rowid = priority << SHIFT | arrival number

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    rowid INTEGER PRIMARY KEY,
    priority INTEGER NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    hist INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    jrnl INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0,
    grp TEXT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_grp ON outbox(grp) WHERE grp IS NOT NULL;
"""
# Columns before the payload: reading them never walks a chunk's overflow pages.


INSERT = (
    "INSERT INTO outbox(rowid, priority, seq, kind, size, hist, created_ms, jrnl, grp, topic,"
    " payload) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the schema, or move a database of the first layout into this one."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if row is not None and "AUTOINCREMENT" in str(row[0]):
            upgrade_v1(conn)
        else:
            run_script(conn, SCHEMA)
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run the ';'-separated statements inside the open transaction (executescript commits)."""
    for stmt in script.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def raise_meta(conn: sqlite3.Connection, key: str, value: int) -> None:
    """meta[key] = max(meta[key], value), inside the caller's open transaction."""
    conn.execute(
        "INSERT INTO meta(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v)",
        (key, value),
    )


_OLD_COLS = "priority, seq, kind, size, hist, created_ms, grp, topic, payload"


def upgrade_v1(conn: sqlite3.Connection) -> None:
    """Rewrite the rows inside the caller's open transaction; nothing queued is lost.

    Rows keep their send order (the old rowid becomes the arrival number); journal copies
    whose outbox row is gone become acknowledged journalled rows.
    """
    for stmt in (
        "DROP TRIGGER IF EXISTS outbox_seq",
        "DROP INDEX IF EXISTS outbox_order",
        "DROP INDEX IF EXISTS outbox_grp",
        "ALTER TABLE outbox RENAME TO outbox_v1",
    ):
        conn.execute(stmt)
    run_script(conn, SCHEMA)
    has_journal = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
    ).fetchone()
    journalled = "o.seq IN (SELECT seq FROM journal)" if has_journal else "0"
    cols = ", ".join(f"o.{c}" for c in _OLD_COLS.split(", "))
    conn.execute(
        f"INSERT INTO outbox(rowid, jrnl, {_OLD_COLS})"
        f" SELECT (o.priority << {SHIFT}) | o.rowid, {journalled}, {cols} FROM outbox_v1 o"
    )
    if has_journal:
        top = conn.execute("SELECT coalesce(max(rowid), 0) FROM outbox_v1").fetchone()[0]
        conn.execute(
            "INSERT INTO outbox(rowid, priority, seq, kind, size, hist, created_ms, jrnl, acked,"
            " topic, payload) SELECT (1 << ?) | (? + j.seq), 1, j.seq, j.kind, 0, 0, 0, 1, 1, '',"
            " j.payload FROM journal j WHERE j.seq NOT IN (SELECT seq FROM outbox_v1"
            " WHERE seq IS NOT NULL)",
            (SHIFT, top),
        )
        conn.execute("DROP TABLE journal")
    row = conn.execute("SELECT max(seq) FROM outbox_v1").fetchone()
    if row[0] is not None:
        raise_meta(conn, "seq", int(row[0]))
    conn.execute("DROP TABLE outbox_v1")
