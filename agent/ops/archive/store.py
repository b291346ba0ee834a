"""The archive's database: SQLite (a file) or PostgreSQL (a DSN), one transaction per batch.

`write()` commits a batch of rows or raises; nothing is half written. Duplicates (a republish,
a broker redelivery, two archivers racing) fall on the primary keys and are dropped there
(`ON CONFLICT DO NOTHING`), so the same batch may be written again safely after any failure.
Blocking calls: the archiver runs them in its own thread, never on an event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from agent.errors import ArchiveDbError
from agent.ops.archive.records import (
    ChunkRow,
    EventRow,
    MediaRow,
    RejectRow,
    Row,
    StateRow,
    assemble,
)

log = logging.getLogger(__name__)

EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}

INSERTS: dict[type, str] = {
    EventRow: "INSERT INTO events (dev, id, kind, seq, boot, ts, time_ok, hist, received_ms, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    MediaRow: "INSERT INTO media (dev, media_id, event_id, sha256, bytes, chunks, mime, "
    "ref_kind, ref_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting') "
    "ON CONFLICT DO NOTHING",
    ChunkRow: "INSERT INTO media_chunks (dev, media_id, n, data, received_ms) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dev, media_id, n) DO UPDATE "
    "SET data = excluded.data, received_ms = excluded.received_ms",
    RejectRow: "INSERT INTO rejects (digest, topic, reason, received_ms, payload) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
}
STATE_INSERT = {
    "states": "INSERT INTO states (dev, digest, online, bdseq, ts, received_ms, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "reported": "INSERT INTO reported (dev, digest, config_ver, tasks_ver, ts, received_ms, "
    "payload) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
}


StoreError = ArchiveDbError  # the archive's name for it


class Store(Protocol):
    """What the archiver needs of a database."""

    def write(self, rows: Sequence[Row]) -> None: ...
    def finish_media(self, dev: str, media_id: str, media_dir: Path) -> str | None: ...
    def unfinished_media(self) -> list[tuple[str, str]]: ...
    def close(self) -> None: ...


def schema_sql() -> list[str]:
    """The statements of schema.sql, comments dropped."""
    text = resources.files("agent.ops.archive").joinpath("schema.sql").read_text("utf-8")
    lines = [ln.split("--", 1)[0] for ln in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _values(row: Row) -> tuple[Any, ...]:
    if isinstance(row, StateRow):
        return (row.dev, row.digest, row.a, row.b, row.ts, row.received_ms, row.payload)
    return tuple(getattr(row, f) for f in row.__slots__)


def _grouped(rows: Iterable[Row]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows per INSERT statement, in first-seen order (a chunk's last copy is written last)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        sql = STATE_INSERT[row.table] if isinstance(row, StateRow) else INSERTS[type(row)]
        out.setdefault(sql, []).append(_values(row))
    return out


def write_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class SqlStore:
    """One connection, SQLite or PostgreSQL; reopened after an error."""

    def __init__(self, target: str) -> None:
        """`target`: a PostgreSQL DSN (postgresql://... or key=value) or a SQLite file path."""
        self._pg = target.startswith(("postgresql://", "postgres://")) or "=" in target
        self._target = target
        self._conn: Any = None
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        if self._pg:
            try:
                import psycopg
            except ImportError:
                raise StoreError(
                    "PostgreSQL needs psycopg: pip install 'grid-edge[central]'"
                ) from None
            self._errors = (psycopg.Error,)
        self._open()

    @property
    def kind(self) -> str:
        """postgresql or sqlite."""
        return "postgresql" if self._pg else "sqlite"

    def _open(self) -> None:
        try:
            if self._pg:
                import psycopg

                self._conn = psycopg.connect(self._target, connect_timeout=10)
            else:
                # One thread at a time uses it (the archiver's), not always the one that opened it.
                self._conn = sqlite3.connect(
                    self._target, timeout=30, isolation_level=None, check_same_thread=False
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            # Archivers starting together: one creates the tables, the others wait for it.
            lock = ["SELECT pg_advisory_xact_lock(72110)"] if self._pg else []
            self._run([(s, []) for s in [*lock, *schema_sql()]])
        except self._errors as exc:
            self.close()
            raise StoreError(f"cannot open the {self.kind} archive: {exc}") from None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def _run(self, work: Sequence[tuple[str, Sequence[tuple[Any, ...]]]]) -> None:
        """Run statements (each over its parameter rows) in one transaction and commit."""
        c = self._conn
        if not self._pg:
            c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.cursor()
            for sql, params in work:
                if params:
                    cur.executemany(self._sql(sql), params)
                else:
                    cur.execute(sql)
            c.commit() if self._pg else c.execute("COMMIT")
        except BaseException:
            if self._pg:
                c.rollback()
            elif c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def write(self, rows: Sequence[Row]) -> None:
        """Insert `rows` in one transaction; StoreError when nothing was committed."""
        try:
            if self._conn is None:
                self._open()
            self._run(list(_grouped(rows).items()))
        except self._errors as exc:
            self.close()
            raise StoreError(f"{self.kind} write failed: {exc}") from None

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), params)
        rows = list(cur.fetchall())
        if self._pg:
            self._conn.commit()  # end the read transaction
        return rows

    def finish_media(self, dev: str, media_id: str, media_dir: Path) -> str | None:
        """Write the photo's file when every chunk is here and the SHA-256 matches.

        Returns its status (ok, waiting, sha256_mismatch) or None when no media event has
        named it yet. Safe to call from several archivers at once: the file is written
        atomically with the same bytes, and the row update is idempotent.
        """
        try:
            if self._conn is None:
                self._open()
            return self._finish(dev, media_id, media_dir)
        except self._errors as exc:
            self.close()
            raise StoreError(f"{self.kind} media {dev}/{media_id}: {exc}") from None

    def _finish(self, dev: str, media_id: str, media_dir: Path) -> str | None:
        key = (dev, media_id)
        found = self._query(
            "SELECT sha256, bytes, chunks, status, mime FROM media WHERE dev = ? AND media_id = ?",
            key,
        )
        if not found:
            return None
        sha, size, count, status, mime = found[0]
        drop = ("DELETE FROM media_chunks WHERE dev = ? AND media_id = ?", [key])
        if status == "ok":
            self._run([drop])  # a late duplicate chunk
            return "ok"
        chunks = self._query(
            "SELECT n, data FROM media_chunks WHERE dev = ? AND media_id = ? AND n < ? ORDER BY n",
            (dev, media_id, count),
        )
        if len(chunks) < count:
            return "waiting"
        data = assemble([bytes(d) for _, d in chunks], sha, size)
        if data is None:
            log.warning("photo %s/%s: chunks do not match its sha256 (yet)", dev, media_id)
            upd = "UPDATE media SET status = 'sha256_mismatch' WHERE dev = ? AND media_id = ?"
            self._run([(upd, [key])])
            return "sha256_mismatch"
        rel = f"{dev}/{media_id}{EXTENSIONS.get(mime or '', '.bin')}"
        write_file(media_dir / rel, data)
        done = (
            "UPDATE media SET status = 'ok', path = ?, done_ms = ? WHERE dev = ? AND media_id = ?"
        )
        self._run([(done, [(rel, int(time.time() * 1000), dev, media_id)]), drop])
        return "ok"

    def unfinished_media(self) -> list[tuple[str, str]]:
        """(dev, media_id) of photos not yet written (a start-up sweep finishes what a crash or
        a failed file write left: their chunks may all be here already)."""
        try:
            if self._conn is None:
                self._open()
            rows = self._query("SELECT dev, media_id FROM media WHERE status <> 'ok'", ())
        except self._errors as exc:
            self.close()
            raise StoreError(f"{self.kind} media sweep: {exc}") from None
        return [(str(d), str(m)) for d, m in rows]

    def count(self, table: str) -> int:
        """Rows in `table` (tests, doctor)."""
        return int(self._query(f"SELECT count(*) FROM {table}", ())[0][0])

    def close(self) -> None:
        """Close the connection (the next write reopens it)."""
        if self._conn is not None:
            with contextlib.suppress(*self._errors):
                self._conn.close()
            self._conn = None
