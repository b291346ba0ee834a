"""Outbox rewrites the broker's limits call for: re-chunking a photo, dropping set-aside rows."""

from __future__ import annotations

import json
from collections.abc import Sequence

import aiosqlite

from sync import envelope
from sync.limits import split
from sync.outbox_rows import ROW_OVERHEAD, Pending

_COLS = "rowid, kind, topic, payload, size, seq, hist, created_ms, priority"


async def rechunk(db: aiosqlite.Connection, group: str, size: int) -> tuple[int, int] | str:
    """Re-split a photo none of whose chunks is gone into `size`-byte chunks, in the open
    transaction; the `media` event (never published yet: it follows the last chunk) gets the
    new `chunks` and goes after them. Returns (rows delta, bytes delta); `incomplete` while
    the `media` event is not stored yet; `partial` when some chunk was acknowledged already
    (it cannot be re-chunked)."""
    rows = list(
        await db.execute_fetchall(
            f"SELECT {_COLS} FROM outbox WHERE grp = ? ORDER BY rowid", (group,)
        )
    )
    chunks = [r for r in rows if r[1] == "media_chunk"]
    events = [r for r in rows if r[1] == "media"]
    if not events:
        return "incomplete"
    if len(events) != 1 or not chunks or len(chunks) + 1 != len(rows):
        return "partial"
    if any(not c[2].endswith(f"/{n}") for n, c in enumerate(chunks)):
        return "partial"
    event = events[0]
    env = json.loads(bytes(event[3]))
    body = env.get("body") if isinstance(env, dict) else None
    data = b"".join(bytes(c[3]) for c in chunks)
    if not isinstance(body, dict) or body.get("chunks") != len(chunks):
        return "partial"
    if body.get("bytes") != len(data):
        return "partial"
    parts = split(data, size)
    body["chunks"] = len(parts)
    payload = envelope.dumps(env)
    prefix = chunks[0][2].rsplit("/", 1)[0]
    old_bytes = sum(r[4] for r in rows)
    await db.execute("DELETE FROM outbox WHERE grp = ?", (group,))
    new_rows = [(f"{prefix}/{n}", None, "media_chunk", part) for n, part in enumerate(parts)] + [
        (event[2], event[5], "media", payload)
    ]
    values = [
        (
            chunks[0][8] if kind == "media_chunk" else event[8],
            seq,
            kind,
            topic,
            data_,
            len(data_) + len(topic) + ROW_OVERHEAD,
            event[6],
            event[7],
            group,
        )
        for topic, seq, kind, data_ in new_rows
    ]
    await db.executemany(
        "INSERT INTO outbox(priority, seq, kind, topic, payload, size, hist, created_ms, grp)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        values,
    )
    return len(values) - len(rows), sum(v[5] for v in values) - old_bytes


async def group_event(db: aiosqlite.Connection, group: str) -> tuple[int, str] | None:
    """(seq, id) of a photo's `media` event while it is stored (a set-aside notice names it)."""
    rows = list(
        await db.execute_fetchall(
            "SELECT seq, payload FROM outbox WHERE grp = ? AND seq IS NOT NULL LIMIT 1", (group,)
        )
    )
    if not rows:
        return None
    env = json.loads(bytes(rows[0][1]))
    return int(rows[0][0]), str(env.get("id")) if isinstance(env, dict) else ""


async def drop_rows(
    db: aiosqlite.Connection, rowids: Sequence[int], group: str | None
) -> tuple[int, int]:
    """Delete these rows and every row of `group` in the open transaction: (rows, bytes)."""
    sizes: list[int] = []
    if rowids:
        marks = ",".join("?" * len(rowids))
        sql = f"DELETE FROM outbox WHERE rowid IN ({marks}) RETURNING size"
        sizes += [r[0] for r in await db.execute_fetchall(sql, tuple(rowids))]
    if group is not None:
        sql = "DELETE FROM outbox WHERE grp = ? RETURNING size"
        sizes += [r[0] for r in await db.execute_fetchall(sql, (group,))]
    return len(sizes), sum(sizes)


async def apply_drops(db: aiosqlite.Connection, batch: Sequence[Pending]) -> tuple[int, int]:
    """Delete what the batch's set-aside notices name, in the open transaction: (rows, bytes)."""
    rows = size = 0
    for item in batch:
        if item.drop_group is not None and item.body is not None:
            # The photo's `media` event goes too: its seq is the gap the notice explains.
            named = await group_event(db, item.drop_group)
            if named is not None and item.body.get("seq") is None:
                item.body = {**item.body, "seq": named[0], "id": named[1]}
        if item.drop or item.drop_group:
            n, b = await drop_rows(db, item.drop, item.drop_group)
            rows, size = rows + n, size + b
    return rows, size
