"""Durable SQLite outbox (contract §3, §7): append assigns id and seq; delete only after PUBACK.

The file is written by one connection on one thread (`sync.outbox_writer.Writer`) and read by
another (WAL: reads never block the writer); the event loop only queues and is woken once per
committed batch (`sync.outbox_thread.Handoff`).
"""

from __future__ import annotations

import asyncio
import functools
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
from sync.outbox_thread import Answer, Batch, Handoff
from sync.outbox_writer import SEQ_RESERVE, Commit, Seqs, Writer
from sync.spawn import Spawn, spawn_task
from sync.statefile import read_json

log = logging.getLogger(__name__)

__all__ = ["SEQ_RESERVE", "Outbox"]

# PUBACKed rows wait this long for an append to carry their delete (flash wear: the append
# writes their page anyway). Not deleting yet only risks a duplicate after a crash.
DELETE_DELAY_S = 0.5
P = ParamSpec("P")
T = TypeVar("T")
Counters = tuple[int, int, bool, int, int]  # depth, bytes, media_refused, stored_bytes, seq


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
        self._queue_size = queue_size
        self._topics: dict[str, str] = {}  # kind -> its topic
        self._delete_delay = delete_delay_s
        self._handoff: Handoff | None = None  # to the writer thread, once open
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
        self._counted(_counters(self._w))
        self._rdb = await self._in_reader(outbox_db.connect, self._path)
        loop = asyncio.get_running_loop()
        self._handoff = Handoff(loop, self._queue_size, self._delete_delay)
        # The writer thread serves the hand-off from now on; the task reports how it ended.
        self._handoff.start(lambda batch: self._commit(batch))  # looked up per batch
        self._writer = self._spawn("outbox-writer", self._handoff.ended)
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
        if self._handoff is not None:
            # Appends already queued commit first (their callers wait), deletions at once.
            await self._handoff.stop()
        if self._writer is not None:
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
        """Run blocking `fn` on the writer thread (the only one that writes the file), after
        everything queued before it."""
        h = self._handoff
        if h is not None and not h.stopped:
            result: T = await h.call(lambda: fn(*args, **kwargs))
            return result
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

    def _counted(self, counters: Counters) -> None:
        """The writer's counters as of its last operation (taken on its thread), on the loop."""
        self.depth, self.bytes, self.media_refused, self.stored_bytes, self.seq = counters

    def _handing(self) -> Handoff:
        if self._handoff is None:
            raise StoreError("outbox is not open")
        return self._handoff

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
        topic = self._topics.get(kind)
        if topic is None:
            topic = envelope.event_topic(self._dev, kind)
            if len(self._topics) < 64:  # the kinds are the code's own few
                self._topics[kind] = topic
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
        h = self._handing()
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        hist = not self._online()
        item = Pending(kind, priority, hist, body, topic, payload, group, fut, journal)
        if not h.offer(item):
            await h.put(item)
        return await fut

    # ----- the writer thread: one transaction per batch (group commit) -------------------------
    def _commit(self, batch: Batch) -> Answer:
        """Writer thread: commit the batch in one transaction; returns what answers its callers
        on the loop (nothing is answered before the commit returned)."""
        live: Batch = []
        appends: list[Pending] = []
        acked: list[int] = []
        marks: list[tuple[int, int | None]] = []
        for i in batch:  # one pass: this runs per message, holding the GIL
            if isinstance(i, Pending):
                if cancelled(i):
                    continue  # its caller stopped waiting: not stored
                appends.append(i)
            else:  # a deletion goes even if its caller stopped waiting (PUBACKs received)
                acked += i.rowids
                if i.release is not None:
                    marks.append(i.release)
            live.append(i)
        if not (appends or acked or marks):
            return functools.partial(answer_deletions, live)  # a wake-up only: no transaction
        w = self._writing()
        # An eviction notice is `hist` as the newest append was (read on the loop; evictions
        # only make room for appends, so without one there is no notice).
        hist = appends[-1].hist if appends else False
        release = marks[-1] if marks else None
        try:
            done = w.commit(appends, hist, acked, release)
        except (sqlite3.Error, OSError) as exc:
            full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)
            err: StoreError = StoreFull(str(exc)) if full else StoreError(str(exc))
            log.error("outbox commit of %d messages failed: %s", len(batch), exc)
            return functools.partial(self._failed, live, err, _counters(w))
        return functools.partial(self._answer, live, done, _counters(w))

    def _failed(self, live: Batch, err: StoreError, counters: Counters) -> None:
        """On the loop: the batch's transaction failed; every caller in it hears why."""
        self._counted(counters)
        for item in live:
            fail(item, err)

    def _answer(self, live: Batch, done: Commit, counters: Counters) -> None:
        """On the loop: resolve the callers of a durable commit and wake the listeners."""
        self._counted(counters)
        answer_deletions(live)
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
        h = self._handing()
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        topic = envelope.event_topic(self._dev, "notice")
        item = Pending("notice", Priority.NOTICE, not self._online(), body, topic, None, None, fut)
        item.drop, item.drop_group = tuple(rowids), group
        await h.put(item)
        return await fut

    async def rechunk(self, group: str, size: int) -> str:
        """Re-split a whole photo's chunks to `size` bytes: `done`, or why not (outbox_fix)."""
        w = self._writing()

        def rechunk() -> tuple[str, Counters]:
            return w.rechunk(group, size), _counters(w)

        result, counters = await self._in_writer(rechunk)
        self._counted(counters)
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
        h = self._handing()
        mark = (up_to_seq, keep_seq)
        if not wait:
            await h.put(Deletion((), None, release=mark))
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await h.put(Deletion((), fut, at_once=True, release=mark))
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
        h = self._handing()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await h.put(Deletion(tuple(rowids), fut, at_once))
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


def _counters(w: Writer) -> Counters:
    """The writer's counters, taken on its thread between operations."""
    return w.depth, w.bytes, w.media_refused, w.stored_bytes, w.seqs.last
