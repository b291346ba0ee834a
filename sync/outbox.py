"""Durable SQLite outbox (contract §3, §7): append assigns id and seq; delete only after PUBACK.

The file is written by one connection on one thread (`sync.outbox_writer.Writer`) and read by
another (WAL: reads never block the writer); the event loop only queues, batches and wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sync import envelope, outbox_db
from sync.envelope import TimeStamp
from sync.errors import MediaRefused, StoreError, StoreFull
from sync.messages import DEFAULT_PRIORITY, Priority, Stored
from sync.outbox_db import Journalled
from sync.outbox_rows import Deletion, Pending, Row, answer_deletions, cancelled, fail
from sync.outbox_writer import SEQ_RESERVE, Commit, Seqs, Writer
from sync.spawn import Spawn, spawn_task
from sync.statefile import read_json

log = logging.getLogger(__name__)

__all__ = ["SEQ_RESERVE", "Outbox"]

MAX_BATCH = 2048
DELETE_BATCH = 900  # PUBACKed rows that commit at once, without waiting for an append
# PUBACKed rows wait this long for an append to carry their delete (flash wear: the append
# writes their page anyway). Not deleting yet only risks a duplicate after a crash.
DELETE_DELAY_S = 0.5
P = ParamSpec("P")
T = TypeVar("T")


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
        delete_delay_s: float = DELETE_DELAY_S,
    ) -> None:
        self._spawn = spawn
        self._dir = state_dir
        self._path = state_dir / "outbox.db"
        self._seq_file = state_dir / "seq.json"
        self._dev = dev
        self._stamp = stamp
        self._budget = budget_bytes
        self._online = online
        self._queue: asyncio.Queue[Pending | Deletion] = asyncio.Queue(queue_size)
        self._delete_delay = delete_delay_s
        self._closing = False  # closing: deletions no longer wait for an append
        # One thread each: SQLite work never runs on the event loop, and each connection is
        # only ever used by its own thread.
        self._wx = ThreadPoolExecutor(1, thread_name_prefix="outbox-write")
        self._rx = ThreadPoolExecutor(1, thread_name_prefix="outbox-read")
        self._w: Writer | None = None
        self._rdb: sqlite3.Connection | None = None  # the publisher's reads
        self._listeners: list[Callable[[int], None]] = []
        self._acked: list[Callable[[list[int]], None]] = []
        self._writer: asyncio.Task[None] | None = None
        self.startup_notices: list[dict[str, Any]] = []
        # Counters as of the writer's last operation (it keeps them; see _counted).
        self.depth = 0  # rows waiting for a PUBACK
        self.bytes = 0  # their bytes, as the budget counts them
        self.media_refused = False  # photos refused: the budget is full of priority 0-1 rows
        self.stored_bytes = 0  # payload bytes committed since the outbox opened
        self.seq = 0  # the last seq given out (kept after closing)
        self.evicted_by_priority: dict[int, int] = {}  # metrics: evictions per priority

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> Outbox:
        self._dir.mkdir(parents=True, exist_ok=True)
        seq_state = read_json(self._seq_file)
        reserved = int(seq_state["ceiling"]) if isinstance(seq_state, dict) else None
        db_existed = self._path.exists()
        conn = await self._open_checked()
        if not db_existed and reserved is not None:
            self.startup_notices.append(
                {"type": "store_quarantined", "file": None, "reason": "outbox database missing"}
            )
        last = await self._in_writer(outbox_db.last_seq, conn)
        if last is None and reserved is None:
            self.startup_notices.append({"type": "state_reset"})
        # Database gone or quarantined: continue after every seq that may have been used.
        seq = max(last, 0) if last is not None else (reserved or 0)
        seqs = Seqs(self._seq_file, seq, max(reserved or 0, seq))
        self._w = await self._in_writer(
            lambda: Writer(conn, seqs, dev=self._dev, stamp=self._stamp, budget=self._budget)
        )
        self._counted()
        self._rdb = await self._in_reader(outbox_db.connect, self._path)
        self._writer = self._spawn("outbox-writer", self._write_loop)
        for body in self.startup_notices:
            log.warning("outbox start: %s", body)
            await self.append("notice", body)
        return self

    async def _open_checked(self) -> sqlite3.Connection:
        """Open and check the database, moving a damaged one aside (with a notice)."""
        conn, problem = await self._in_writer(outbox_db.open_checked, self._path)
        if conn is not None:
            return conn
        assert problem is not None
        moved = await self._in_writer(outbox_db.quarantine, self._path, problem)
        self.startup_notices.append({"type": "store_quarantined", "file": moved, "reason": problem})
        conn, problem = await self._in_writer(outbox_db.open_checked, self._path)
        if conn is None:
            raise StoreError(f"cannot start a new outbox database: {problem}")
        return conn

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        if self._writer is not None:
            if not self._writer.done():
                # Wake a writer waiting to give deletions company: nothing more will come.
                await self._queue.put(Deletion((), None, at_once=True))
                # Appends already queued commit first: their callers are waiting on them.
                await self._queue.join()
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._rdb is not None:
            await self._in_reader(self._rdb.close)
        if self._w is not None:
            await self._in_writer(self._w.conn.close)
        self._w = self._rdb = None
        self._wx.shutdown(wait=True)
        self._rx.shutdown(wait=True)

    async def _in_writer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking `fn` on the writer thread (the only one that writes the file)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._wx, lambda: fn(*args, **kwargs))

    async def _in_reader(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking `fn` on the reader thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._rx, lambda: fn(*args, **kwargs))

    def _writing(self) -> Writer:
        if self._w is None:
            raise StoreError("outbox is not open")
        return self._w

    def _reading(self) -> sqlite3.Connection:
        if self._rdb is None:
            raise StoreError("outbox is not open")
        return self._rdb

    def _counted(self) -> None:
        """Copy the writer thread's counters; on the loop, after each of its operations."""
        if self._w is not None:
            w = self._w
            self.depth, self.bytes, self.media_refused = w.depth, w.bytes, w.media_refused
            self.stored_bytes, self.seq = w.stored_bytes, w.seqs.last

    # ----- producers -------------------------------------------------------------------------
    def on_acked(self, listener: Callable[[list[int]], None]) -> None:
        """Call `listener(seqs)` once PUBACKed rows are out of the queue: the broker has them."""
        self._acked.append(listener)

    async def holds(self, seq: int) -> bool:
        """Whether the message of `seq` still waits for its PUBACK."""

        def waiting(conn: sqlite3.Connection) -> bool:
            sql = "SELECT 1 FROM outbox WHERE seq = ? AND acked = 0 LIMIT 1"
            return conn.execute(sql, (seq,)).fetchone() is not None

        return await self._in_reader(waiting, self._reading())

    def subscribe(self, listener: Callable[[int], None]) -> None:
        """Call `listener(priority)` after every commit that added a row of that priority."""
        self._listeners.append(listener)

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

        `journal`: the message is also kept as journal, past its PUBACK until
        `journal_release` (see journal_after).
        """
        prio = DEFAULT_PRIORITY.get(kind, Priority.NOTICE) if priority is None else priority
        topic = envelope.event_topic(self._dev, kind)
        return await self._submit(kind, prio, body, topic, None, group, journal)

    def stamp(self) -> TimeStamp:
        """The time fields a message created now gets."""
        return self._stamp()

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
        batch: list[Pending | Deletion] = []
        try:
            while True:
                batch = await self._next_batch()
                try:
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
                fail(item, StoreError("the outbox writer stopped"))

    async def _next_batch(self) -> list[Pending | Deletion]:
        """Everything queued, at least one item; deletions alone wait a little for company."""
        batch = [await self._queue.get()]
        self._take_queued(batch)
        acked = sum(len(i.rowids) for i in batch if isinstance(i, Deletion))
        alone = all(isinstance(i, Deletion) and not i.at_once for i in batch)
        if alone and acked < DELETE_BATCH and not self._closing:
            # Nothing durable waits: let the next append carry these deletes.
            with contextlib.suppress(TimeoutError):
                batch.append(await asyncio.wait_for(self._queue.get(), self._delete_delay))
                self._take_queued(batch)
        return batch

    def _take_queued(self, batch: list[Pending | Deletion]) -> None:
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _commit(self, batch: list[Pending | Deletion]) -> None:
        """Commit the batch on the writer thread (one hop), then answer its callers."""
        # A deletion goes even if its caller stopped waiting (the PUBACKs were received).
        live = [i for i in batch if isinstance(i, Deletion) or not cancelled(i)]
        appends = [i for i in live if isinstance(i, Pending)]
        acked = [r for i in live if isinstance(i, Deletion) for r in i.rowids]
        marks = [i.release for i in live if isinstance(i, Deletion) and i.release is not None]
        if not (appends or acked or marks):
            answer_deletions(live)  # a wake-up only: no transaction
            return
        try:
            w = self._writing()
            hist = not self._online()
            release = marks[-1] if marks else None
            done = await self._in_writer(w.commit, appends, hist, acked, release)
        except (sqlite3.Error, OSError) as exc:
            full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
            err: StoreError = StoreFull(str(exc)) if full else StoreError(str(exc))
            log.error("outbox commit of %d messages failed: %s", len(batch), exc)
            for item in live:
                fail(item, err)
            return
        finally:
            self._counted()
        answer_deletions(live)
        self._answer(done)

    def _answer(self, done: Commit) -> None:
        """Resolve the callers of a durable commit and wake the listeners."""
        for item, why in done.rejected:
            fail(item, why)
        for item in done.refused:
            fail(item, MediaRefused("outbox full of priority 0-1 messages"))
        for item, stored, _ in done.rows:
            if item.future is not None and not item.future.done():
                item.future.set_result(stored)
        for r in done.evicted:
            self.evicted_by_priority[r.priority] = self.evicted_by_priority.get(r.priority, 0) + 1
        for prio in sorted({s.priority for _, s, _ in done.rows}):
            for listener in self._listeners:
                listener(prio)
        for acked in self._acked if done.acked_seqs else ():
            acked(done.acked_seqs)

    async def set_aside(
        self, body: Mapping[str, Any], rowids: Sequence[int], group: str | None = None
    ) -> Stored:
        """Store the `notice` and delete these rows (and `group`'s) in one commit."""
        if self._writer is None or self._writer.done():
            raise StoreError("outbox is not open")
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        topic = envelope.event_topic(self._dev, "notice")
        item = Pending("notice", Priority.NOTICE, not self._online(), body, topic, None, None, fut)
        item.drop, item.drop_group = tuple(rowids), group
        await self._queue.put(item)
        return await fut

    async def rechunk(self, group: str, size: int) -> str:
        """Re-split a whole photo's chunks to `size` bytes: `done`, or why not (outbox_fix)."""
        result = await self._in_writer(self._writing().rechunk, group, size)
        self._counted()
        if result == "done":
            for listener in self._listeners:
                listener(Priority.MEDIA)
        return result

    # ----- the journal: journalled messages until their producer has saved its state ---------
    async def journal_after(self, after_seq: int | None, kind: str) -> list[Journalled]:
        """Journalled messages of `kind` with seq > after_seq (all when None), in seq order."""
        return await self._in_reader(outbox_db.journal_after, self._reading(), after_seq, kind)

    async def journal_release(
        self, up_to_seq: int, keep_seq: int | None = None, *, wait: bool = True
    ) -> None:
        """Drop journalled messages with seq <= up_to_seq except keep_seq (each once it is
        also acknowledged). `wait`: commit now and raise StoreError if that failed; else
        the next write transaction carries it (a failure is logged, and the next release
        covers these rows again)."""
        if self._writer is None or self._writer.done():
            raise StoreError("outbox is not open")
        mark = (up_to_seq, keep_seq)
        if not wait:
            await self._queue.put(Deletion((), None, release=mark))
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Deletion((), fut, at_once=True, release=mark))
        await asyncio.shield(fut)

    # ----- the publisher's side --------------------------------------------------------------
    async def fetch(
        self, after: tuple[int, int], limit: int, *, live_only: bool = False
    ) -> list[Row]:
        """Rows after (priority, rowid) in send order (§7); `live_only` skips the hist backlog."""
        return await self._in_reader(outbox_db.fetch, self._reading(), after, limit, live_only)

    async def groups_present(self, groups: Sequence[str]) -> set[str]:
        """Which of these media groups still have rows waiting for a PUBACK."""
        if not groups:
            return set()
        return await self._in_reader(outbox_db.groups_present, self._reading(), groups)

    async def delete(self, rowids: Sequence[int], *, at_once: bool = False) -> None:
        """Delete PUBACKed rows (journalled ones stay as journal until released), in the next
        write transaction: an append's, or after `delete_delay_s` (at once with `at_once`)
        one of their own.

        A failure is logged only: not deleting means a duplicate later, which central
        dedupes on `id`. Rows evicted meanwhile are simply gone.
        """
        if not rowids:
            return
        if self._writer is None or self._writer.done():
            raise StoreError("outbox is not open")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Deletion(tuple(rowids), fut, at_once))
        try:
            await asyncio.shield(fut)
        except StoreError as exc:
            log.error("deleting %d acknowledged rows failed: %s", len(rowids), exc)

    async def oldest_ms(self) -> int | None:
        """Creation time of the oldest stored message, or None when empty."""
        conn = self._reading()

        def oldest() -> int | None:
            return outbox_db.oldest_ms(conn, outbox_db.priorities(conn))

        return await self._in_reader(oldest)

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The writer task, for the supervisor to watch."""
        return self._writer
