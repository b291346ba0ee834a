"""Durable SQLite outbox (contract §3, §7): append assigns id and seq; delete only after PUBACK."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from sync import envelope, outbox_db, outbox_fix
from sync.envelope import TimeStamp
from sync.errors import MediaRefused, StoreError, StoreFull
from sync.messages import DEFAULT_PRIORITY, Priority, Stored
from sync.ordering import RowInfo, eviction_notice
from sync.outbox_db import Journalled
from sync.outbox_rows import Pending, Row, build
from sync.spawn import Spawn, spawn_task
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

SEQ_RESERVE = 10_000  # seq numbers reserved ahead in seq.json, so a lost database never reuses one
MAX_BATCH = 2048


class Outbox:
    """The outbox; `async with` opens (checking, quarantining) and runs the group-commit writer."""

    def __init__(
        self,
        state_dir: Path,
        dev: str,
        *,
        stamp: Callable[[], TimeStamp],
        budget_bytes: int,
        online: Callable[[], bool] = lambda: False,
        queue_size: int = 8192,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self._dir = state_dir
        self._path = state_dir / "outbox.db"
        self._seq_file = state_dir / "seq.json"
        self._dev = dev
        self._stamp = stamp
        self._budget = budget_bytes
        self._online = online
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(queue_size)
        self._db: aiosqlite.Connection | None = None  # writes (and reads inside them)
        self._rdb: aiosqlite.Connection | None = None  # the publisher's reads (WAL: no blocking)
        self._wlock = asyncio.Lock()  # one write transaction at a time on the writer connection
        self._seq = 0
        self._ceiling = 0
        self.bytes = 0
        self.depth = 0
        self.media_refused = False
        self.evicted_by_priority: dict[int, int] = {}  # metrics: evictions per priority
        self._listeners: list[Callable[[int], None]] = []
        self._acked: list[Callable[[list[int]], None]] = []
        self._writer: asyncio.Task[None] | None = None
        self.startup_notices: list[dict[str, Any]] = []

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Outbox:
        self._dir.mkdir(parents=True, exist_ok=True)
        seq_state = read_json(self._seq_file)
        reserved = int(seq_state["ceiling"]) if isinstance(seq_state, dict) else None
        db_existed = self._path.exists()
        problem = await self._open_checked()
        if problem is not None:
            moved = await asyncio.to_thread(outbox_db.quarantine, self._path, problem)
            self.startup_notices.append(
                {"type": "store_quarantined", "file": moved, "reason": problem}
            )
            problem = await self._open_checked()
            if problem is not None:
                raise StoreError(f"cannot start a new outbox database: {problem}")
        elif not db_existed and reserved is not None:
            self.startup_notices.append(
                {"type": "store_quarantined", "file": None, "reason": "outbox database missing"}
            )
        assert self._db is not None
        db_seq = await outbox_db.meta(self._db, "seq")
        if db_seq is not None:
            self._seq = max(db_seq, 0)
        elif reserved is not None:
            # Database gone or quarantined: continue after every seq that may have been used.
            self._seq = reserved
        else:
            self.startup_notices.append({"type": "state_reset"})
        self._ceiling = max(reserved or 0, self._seq)
        await self._load_counts()
        self._rdb = await aiosqlite.connect(self._path, isolation_level=None)
        self._writer = self._spawn("outbox-writer", self._write_loop)
        for body in self.startup_notices:
            log.warning("outbox start: %s", body)
            await self.append("notice", body)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            if not self._writer.done():
                # Appends already queued commit first: their callers are waiting on them.
                await self._queue.join()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for conn in (self._rdb, self._db):
            if conn is not None:
                await conn.close()
        self._db = self._rdb = None

    async def _open_checked(self) -> str | None:
        """Open and check the database; return what is wrong with it, or None."""
        self._db, problem = await outbox_db.open_checked(self._path)
        return problem

    async def _load_counts(self) -> None:
        assert self._db is not None
        self.depth, self.bytes = await outbox_db.counts(self._db)

    # ----- producers -------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call `listener(priority)` after every commit that added a row of that priority."""
        self._listeners.append(listener)

    def on_acked(self, listener: Callable[[list[int]], None]) -> None:
        """Call `listener(seqs)` once acknowledged rows are deleted: the broker has them."""
        self._acked.append(listener)

    async def holds(self, seq: int) -> bool:
        """Whether the message of `seq` is still waiting in the outbox."""
        assert self._rdb is not None
        sql = "SELECT 1 FROM outbox WHERE seq = ? LIMIT 1"
        return bool(list(await self._rdb.execute_fetchall(sql, (seq,))))

    async def append(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        group: str | None = None,
        journal: bool = False,
    ) -> Stored:
        """Store one `evt/*` or `ack` message durably; returns after the commit.

        `journal`: the same commit also copies it into the journal, which outlives the
        PUBACK until `journal_release` (see journal_after).
        """
        prio = DEFAULT_PRIORITY.get(kind, Priority.NOTICE) if priority is None else priority
        topic = envelope.event_topic(self._dev, kind)
        return await self._submit(kind, prio, body, topic, None, group, journal)

    def stamp(self) -> TimeStamp:
        """The time fields a message created now gets."""
        return self._stamp()

    async def groups_present(self, groups: Sequence[str]) -> set[str]:
        """Which of these media groups still have rows waiting for a PUBACK."""
        if not groups:
            return set()
        assert self._rdb is not None
        present: set[str] = set()
        for i in range(0, len(groups), 500):
            part = list(groups[i : i + 500])
            sql = f"SELECT DISTINCT grp FROM outbox WHERE grp IN ({','.join('?' * len(part))})"
            present.update(r[0] for r in await self._rdb.execute_fetchall(sql, part))
        return present

    async def append_raw(
        self, kind: str, topic: str, payload: bytes, *, priority: int, group: str | None
    ) -> Stored:
        """Store a message without envelope or seq (a media chunk); returns after the commit."""
        return await self._submit(kind, priority, None, topic, payload, group)

    async def _submit(
        self,
        kind: str,
        priority: int,
        body: Mapping[str, Any] | None,
        topic: str,
        payload: bytes | None,
        group: str | None,
        journal: bool = False,
    ) -> Stored:
        if self._writer is None or self._writer.done():
            raise StoreError("outbox is not open")
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        hist = not self._online()
        item = Pending(kind, priority, hist, body, topic, payload, group, fut, journal)
        await self._queue.put(item)
        return await fut

    # ----- the writer: one transaction per batch (group commit) ------------------------------
    async def _write_loop(self) -> None:
        batch: list[Pending] = []
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                try:
                    async with self._wlock:
                        await self._commit(batch)
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            # The writer is gone (a bug, or shutdown): no caller may wait for it for ever.
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
                self._queue.task_done()
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(StoreError("the outbox writer stopped"))

    async def _commit(self, batch: list[Pending]) -> None:
        assert self._db is not None
        seq_before, ceiling_before = self._seq, self._ceiling
        rows: list[tuple[Pending, Stored, int]] = []
        evicted: list[RowInfo] = []
        carried: list[dict[str, Any]] = []
        refused: list[Pending] = []
        rejected: list[tuple[Pending, StoreError]] = []
        batch_bytes = 0  # bytes of `rows` so far: kept, not re-summed per item
        removed = (0, 0)  # rows and bytes set-aside notices remove in this transaction
        try:
            removed = await outbox_fix.apply_drops(self._db, batch)
            self.depth -= removed[0]
            self.bytes -= removed[1]
            for item in batch:
                if item.future.cancelled():
                    continue
                try:
                    stored, size = self._build(item)
                except StoreError as exc:
                    # One bad message must not take the batch (or the writer) down with it.
                    log.error("refusing to store a message: %s", exc)
                    rejected.append((item, exc))
                    continue
                over = self.bytes + batch_bytes + size - self._budget
                if over > 0:
                    dropped, earlier = await outbox_db.evict(self._db, over)
                    evicted.extend(dropped)
                    carried.extend(earlier)
                    self.bytes -= sum(r.size for r in dropped)
                    self.depth -= len(dropped)
                    still_over = self.bytes + batch_bytes + size > self._budget
                    if still_over and item.priority >= Priority.MEDIA:
                        self.media_refused = True
                        refused.append(item)
                        if stored.seq:
                            self._seq -= 1  # it was the last one given out; nothing used it
                        continue
                rows.append((item, stored, size))
                batch_bytes += size
            if evicted:
                # The notice commits with the eviction: no window where rows are gone unexplained.
                body = eviction_notice(evicted, carried)
                loop = asyncio.get_running_loop()
                note = Pending(
                    "notice",
                    3,
                    not self._online(),
                    body,
                    envelope.event_topic(self._dev, "notice"),
                    None,
                    None,
                    loop.create_future(),
                )
                stored, size = self._build(note)
                rows.append((note, stored, size))
            if self._seq > self._ceiling:
                self._ceiling = self._seq + SEQ_RESERVE
                await asyncio.to_thread(write_json, self._seq_file, {"ceiling": self._ceiling})
            now = self._stamp().ts
            await self._db.executemany(
                "INSERT INTO outbox(priority, seq, kind, topic, payload, size, hist,"
                " created_ms, grp) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.priority,
                        s.seq or None,
                        i.kind,
                        s.topic,
                        s.payload,
                        size,
                        i.hist,
                        now,
                        i.group,
                    )
                    for i, s, size in rows
                ],
            )
            await outbox_db.journal_insert(
                self._db, [(s.seq, i.kind, s.payload) for i, s, _ in rows if i.journal and s.seq]
            )
            await self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            await self._rollback()
            self._seq, self._ceiling = seq_before, ceiling_before
            self.bytes += sum(r.size for r in evicted) + removed[1]
            self.depth += len(evicted) + removed[0]
            full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
            err: StoreError = StoreFull(str(exc)) if full else StoreError(str(exc))
            log.error("outbox commit of %d messages failed: %s", len(batch), exc)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        self.bytes += sum(size for _, _, size in rows)
        self.depth += len(rows)
        for item, why in rejected:
            if not item.future.done():
                item.future.set_exception(why)
        for item in refused:
            if not item.future.done():
                item.future.set_exception(MediaRefused("outbox full of priority 0-1 messages"))
        for item, stored, _ in rows:
            if not item.future.done():
                item.future.set_result(stored)
        for prio in sorted({s.priority for _, s, _ in rows}):
            for listener in self._listeners:
                listener(prio)
        if evicted:
            byp = self.evicted_by_priority
            for r in evicted:
                byp[r.priority] = byp.get(r.priority, 0) + 1
            log.warning("outbox over budget: evicted %d messages", len(evicted))

    async def _rollback(self) -> None:
        assert self._db is not None
        try:
            await self._db.rollback()
        except sqlite3.Error as exc:
            log.debug("rollback: %s", exc)

    def _build(self, item: Pending) -> tuple[Stored, int]:
        """Build the item with the next seq in the open transaction; a refused one takes none."""
        stored, size = build(item, dev=self._dev, seq=self._seq + 1, stamp=self._stamp)
        if stored.seq:
            self._seq = stored.seq
        return stored, size

    async def set_aside(
        self, body: Mapping[str, Any], rowids: Sequence[int], group: str | None = None
    ) -> Stored:
        """Store the `notice` and delete these rows (and `group`'s) in one commit."""
        if self._writer is None or self._writer.done():
            raise StoreError("outbox is not open")
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        topic = envelope.event_topic(self._dev, "notice")
        item = Pending("notice", 3, not self._online(), body, topic, None, None, fut)
        item.drop, item.drop_group = tuple(rowids), group
        await self._queue.put(item)
        return await fut

    async def rechunk(self, group: str, size: int) -> str:
        """Re-split a whole photo's chunks to `size` bytes: `done`, or why not (outbox_fix)."""
        assert self._db is not None
        async with self._wlock:
            try:
                delta = await outbox_fix.rechunk(self._db, group, size)
                await self._db.commit()
            except (sqlite3.Error, OSError, ValueError) as exc:
                await self._rollback()
                log.error("re-chunking media %s failed: %s", group, exc)
                return "failed"
        if isinstance(delta, str):
            return delta
        self.depth += delta[0]
        self.bytes += delta[1]
        for listener in self._listeners:
            listener(Priority.MEDIA)
        return "done"

    # ----- the journal: journalled messages until their producer has saved its state ---------
    async def journal_after(self, after_seq: int | None, kind: str) -> list[Journalled]:
        """Journalled messages of `kind` with seq > after_seq (all when None), in seq order."""
        assert self._rdb is not None
        return await outbox_db.journal_after(self._rdb, after_seq, kind)

    async def journal_release(self, up_to_seq: int, keep_seq: int | None = None) -> None:
        """Delete journal rows with seq <= up_to_seq except keep_seq; StoreError if that failed."""
        if self._db is None:
            raise StoreError("outbox is not open")
        async with self._wlock:
            try:
                await self._db.execute(
                    "DELETE FROM journal WHERE seq <= ? AND seq IS NOT ?", (up_to_seq, keep_seq)
                )
                await self._db.commit()
            except sqlite3.Error as exc:
                await self._rollback()
                raise StoreError(f"journal release failed: {exc}") from None

    # ----- the publisher's side --------------------------------------------------------------
    async def fetch(
        self, after: tuple[int, int], limit: int, *, live_only: bool = False
    ) -> list[Row]:
        """Rows after (priority, rowid) in send order (§7); `live_only` skips the hist backlog."""
        assert self._rdb is not None
        where = "(priority, rowid) > (?, ?)" + (" AND hist = 0" if live_only else "")
        sql = (
            f"SELECT rowid, priority, topic, payload, size, hist, grp FROM outbox WHERE {where}"
            " ORDER BY priority, rowid LIMIT ?"
        )
        rows = await self._rdb.execute_fetchall(sql, (after[0], after[1], limit))
        return [Row(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]

    async def delete(self, rowids: Sequence[int]) -> None:
        """Delete acknowledged rows in one commit (rows evicted meanwhile are simply gone)."""
        if not rowids:
            return
        assert self._db is not None
        marks = ",".join("?" * len(rowids))
        sql = f"DELETE FROM outbox WHERE rowid IN ({marks}) RETURNING size, seq"
        async with self._wlock:
            try:
                gone = list(await self._db.execute_fetchall(sql, tuple(rowids)))
                sizes = [r[0] for r in gone]
                await self._db.commit()
            except sqlite3.Error as exc:
                await self._rollback()
                # Not deleting only means a duplicate later, which central dedupes on `id`.
                log.error("deleting %d acknowledged rows failed: %s", len(rowids), exc)
                return
        self.depth -= len(sizes)
        self.bytes -= sum(sizes)
        if self.bytes < self._budget:
            self.media_refused = False
        seqs = [r[1] for r in gone if r[1] is not None]
        for listener in self._acked if seqs else ():
            listener(seqs)

    async def oldest_ms(self) -> int | None:
        """Creation time of the oldest stored message, or None when empty."""
        assert self._rdb is not None
        rows = list(
            await self._rdb.execute_fetchall("SELECT created_ms FROM outbox ORDER BY rowid LIMIT 1")
        )
        return int(rows[0][0]) if rows else None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The writer task, for the supervisor to watch."""
        return self._writer

    @property
    def seq(self) -> int:
        """The last seq given out."""
        return self._seq
