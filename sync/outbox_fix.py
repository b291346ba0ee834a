"""Outbox rewrites the broker's limits call for: re-chunking a photo, dropping set-aside rows.

Blocking functions on a plain `sqlite3.Connection`, run on the outbox's writer thread inside
its open transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sync import envelope
from sync.limits import split
from sync.outbox_rows import ROW_OVERHEAD, Pending
from sync.outbox_schema import INSERT

_COLS = "rowid, kind, topic, payload, size, seq, hist, created_ms, priority"


def rechunk(
    db: sqlite3.Connection, group: str, size: int, rowid: Callable[[int], int]
) -> tuple[int, int] | str:
    """Re-split a photo none of whose chunks is gone into `size`-byte chunks, in the open
    transaction; the `media` event (never published yet: it follows the last chunk) gets the
    new `chunks` and goes after them. `rowid(priority)` gives each new row its rowid.
    Returns (rows delta, bytes delta); `incomplete` while the `media` event is not stored
    yet; `partial` when some chunk was acknowledged already (it cannot be re-chunked)."""
    rows = db.execute(
        f"SELECT {_COLS} FROM outbox WHERE grp = ? AND acked = 0 ORDER BY rowid", (group,)
    ).fetchall()
    chunks = [r for r in rows if r[1] == "media_chunk"]
    events = [r for r in rows if r[1] == "media"]
    if not events:
        return "incomplete"
    event = events[0]
    body = _whole_photo_body(chunks, events, rows)
    if body is None:
        return "partial"
    parts = split(b"".join(bytes(c[3]) for c in chunks), size)
    body["body"]["chunks"] = len(parts)
    prefix = chunks[0][2].rsplit("/", 1)[0]
    new_rows = [(f"{prefix}/{n}", None, "media_chunk", part) for n, part in enumerate(parts)]
    new_rows.append((event[2], event[5], "media", envelope.dumps(body)))
    db.execute("DELETE FROM outbox WHERE grp = ?", (group,))
    values = [
        (
            rowid(chunks[0][8] if kind == "media_chunk" else event[8]),
            chunks[0][8] if kind == "media_chunk" else event[8],
            seq,
            kind,
            len(data) + len(topic) + ROW_OVERHEAD,
            event[6],
            event[7],
            0,
            group,
            topic,
            data,
        )
        for topic, seq, kind, data in new_rows
    ]
    db.executemany(INSERT, values)
    return len(values) - len(rows), sum(v[4] for v in values) - sum(r[4] for r in rows)


def _whole_photo_body(
    chunks: list[Any], events: list[Any], rows: list[Any]
) -> dict[str, Any] | None:
    """The `media` event's envelope when the rows are the whole photo; None when not."""
    if len(events) != 1 or not chunks or len(chunks) + 1 != len(rows):
        return None
    if any(not c[2].endswith(f"/{n}") for n, c in enumerate(chunks)):
        return None
    env: dict[str, Any] | Any = json.loads(bytes(events[0][3]))
    if not isinstance(env, dict):
        return None
    body = env.get("body")
    if not isinstance(body, dict) or body.get("chunks") != len(chunks):
        return None
    if body.get("bytes") != sum(len(bytes(c[3])) for c in chunks):
        return None
    return env


def group_event(db: sqlite3.Connection, group: str) -> tuple[int, str] | None:
    """(seq, id) of a photo's `media` event while it is stored (a set-aside notice names it)."""
    row = db.execute(
        "SELECT seq, payload FROM outbox WHERE grp = ? AND seq IS NOT NULL LIMIT 1", (group,)
    ).fetchone()
    if row is None:
        return None
    env = json.loads(bytes(row[1]))
    return int(row[0]), str(env.get("id")) if isinstance(env, dict) else ""


def drop_rows(db: sqlite3.Connection, rowids: Sequence[int], group: str | None) -> tuple[int, int]:
    """Take these rows and every row of `group` out of the queue in the open transaction:
    (rows, bytes). A journalled one stays as journal (acked), like after a PUBACK."""
    found: list[tuple[int, int | None]] = []
    where: list[tuple[str, tuple[Any, ...]]] = []
    if rowids:
        where.append((f"rowid IN ({','.join('?' * len(rowids))})", tuple(rowids)))
    if group is not None:
        where.append(("grp = ?", (group,)))
    for cond, args in where:
        sql = f"DELETE FROM outbox WHERE {cond} AND acked = 0 AND jrnl = 0 RETURNING size, seq"
        found += db.execute(sql, args).fetchall()
        sql = f"UPDATE outbox SET acked = 1 WHERE {cond} AND acked = 0 RETURNING size, seq"
        found += db.execute(sql, args).fetchall()
    # The set-aside notice stored in the same transaction takes a higher seq than these.
    return len(found), sum(size for size, _ in found)


def apply_drops(db: sqlite3.Connection, batch: Sequence[Pending]) -> tuple[int, int]:
    """Delete what the batch's set-aside notices name, in the open transaction: (rows, bytes)."""
    rows = size = 0
    for item in batch:
        if item.drop_group is not None and item.body is not None:
            # The photo's `media` event goes too: its seq is the gap the notice explains.
            named = group_event(db, item.drop_group)
            if named is not None and item.body.get("seq") is None:
                item.body = {**item.body, "seq": named[0], "id": named[1]}
        if item.drop or item.drop_group:
            n, b = drop_rows(db, item.drop, item.drop_group)
            rows, size = rows + n, size + b
    return rows, size
