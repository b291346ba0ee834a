"""The outbox's writing side: one connection, used only on the outbox's writer thread.

Every method blocks; `sync.outbox.Outbox` calls them through its one-thread executor, so a
whole group commit (drops, eviction, insert, commit) costs one hop off the event loop.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync import envelope, outbox_db, outbox_fix
from sync.envelope import TimeStamp
from sync.errors import StoreError
from sync.messages import Priority, Stored
from sync.ordering import RowInfo, eviction_notice
from sync.outbox_rows import Pending, build
from sync.outbox_schema import INSERT, SHIFT
from sync.statefile import write_json

log = logging.getLogger(__name__)

SEQ_RESERVE = 10_000  # seq numbers reserved ahead in seq.json, so a lost database never reuses one


class Seqs:
    """Sequence reservation: the last seq given out and the ceiling reserved in seq.json."""

    def __init__(self, path: Path, last: int, ceiling: int) -> None:
        self._path = path
        self.last = last
        self.ceiling = ceiling

    def take(self) -> int:
        """The next seq (reserved on disk by `reserve` before the commit that uses it)."""
        self.last += 1
        return self.last

    def give_back(self, seq: int) -> None:
        """Return the seq just taken: the message that took it was refused."""
        if seq == self.last:
            self.last -= 1

    def reserve(self) -> None:
        """Move the ceiling in seq.json ahead when the seqs given out reach it (blocking)."""
        if self.last > self.ceiling:
            ceiling = self.last + SEQ_RESERVE
            write_json(self._path, {"ceiling": ceiling})
            self.ceiling = ceiling

    def mark(self) -> tuple[int, int]:
        """The state to go back to if the transaction fails."""
        return self.last, self.ceiling

    def restore(self, mark: tuple[int, int]) -> None:
        """Forget the seqs a failed transaction took."""
        self.last, self.ceiling = mark


@dataclass(slots=True)
class Commit:
    """What one group commit did; the callers learn it once it is durable."""

    rows: list[tuple[Pending, Stored, int]] = field(default_factory=list)
    evicted: list[RowInfo] = field(default_factory=list)
    carried: list[dict[str, Any]] = field(default_factory=list)  # older eviction notices
    refused: list[Pending] = field(default_factory=list)  # media over budget
    rejected: list[tuple[Pending, StoreError]] = field(default_factory=list)
    dropped: tuple[int, int] = (0, 0)  # (rows, bytes) set-aside notices removed
    acked: tuple[int, int] = (0, 0)  # (rows, bytes) PUBACKed rows deleted
    acked_seqs: list[int] = field(default_factory=list)  # their seqs: the broker has them
    holders: list[int] = field(default_factory=list)  # rows kept for their seq afterwards
    added: int = 0  # bytes of `rows`

    def freed(self) -> int:
        """Bytes this transaction removed from the queue."""
        return self.dropped[1] + self.acked[1] + sum(r.size for r in self.evicted)


class Writer:
    """The outbox file's writing connection and the counters it keeps (writer thread only)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        seqs: Seqs,
        *,
        dev: str,
        stamp: Callable[[], TimeStamp],
        budget: int,
    ) -> None:
        self.conn = conn
        self.seqs = seqs
        self._dev = dev
        self._stamp = stamp
        self._batch_stamp: TimeStamp | None = None  # one reading per commit (see _now)
        self._budget = budget
        self._number = outbox_db.last_number(conn)  # arrival number of the last row
        self.depth, self.bytes = outbox_db.counts(conn)
        self.media_refused = False
        self.stored_bytes = 0  # payload bytes committed in this run (benchmarks)
        self._holders = outbox_db.holders(conn)  # rows kept for their seq (outbox_db)

    def next_rowid(self, priority: int) -> int:
        """The rowid of a new row: after every row of its priority."""
        self._number += 1
        return outbox_db.rowid_of(priority, self._number)

    # ----- appends -----------------------------------------------------------------------
    def commit(
        self,
        batch: Sequence[Pending],
        hist: bool,
        acked: Sequence[int] = (),
        release: tuple[int, int | None] | None = None,
    ) -> Commit:
        """Apply the journal `release` (up to seq, seq kept), delete the `acked` rows and store
        the batch, in one transaction; `hist` flags an eviction notice it adds.

        The PUBACKed rows mostly sit in the very page the appends write: deleting them here
        costs no page of its own (flash wear). Raises sqlite3.Error or OSError with nothing
        stored or deleted and no seq used.
        """
        marks = self.seqs.mark(), self._number
        self._batch_stamp = None
        committed = False
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            done = self._write(batch, hist, acked, release)
            self.conn.execute("COMMIT")
            committed = True
        finally:
            if not committed:  # whatever went wrong: nothing stored, no seq used
                self.rollback()
                self.seqs.restore(marks[0])
                self._number = marks[1]
        self._holders = done.holders
        self._account(done)
        return done

    def _write(
        self,
        batch: Sequence[Pending],
        hist: bool,
        acked: Sequence[int],
        release: tuple[int, int | None] | None,
    ) -> Commit:
        """The statements of one group commit, inside its transaction."""
        done = Commit(dropped=outbox_fix.apply_drops(self.conn, batch))
        holders = list(self._holders)
        top = self.seqs.last
        if release is not None:
            holder = outbox_db.journal_release(self.conn, *release, top)
            holders += [] if holder is None else [holder]
        if acked:
            rows, size, holder, done.acked_seqs = outbox_db.delete_acked(self.conn, acked, top)
            done.acked = (rows, size)
            holders += [] if holder is None else [holder]
        for item in batch:
            self._place(item, done)
        if done.evicted:
            # The notice commits with the eviction: no window where rows are gone unexplained.
            self._add(self._eviction_notice(done, hist), done)
        self._insert(done.rows)
        self.seqs.reserve()
        done.holders = self._settle(holders, done)
        return done

    def _settle(self, holders: list[int], done: Commit) -> list[int]:
        """Keep a seq holder only while no queued row has the high-water mark: a row stored
        with a seq supersedes every holder, a new holder the older ones. (A holder left at
        the end of the table would push appends into the middle of it: page splits.)"""
        gone = holders if any(s.seq for _, s, _ in done.rows) else holders[:-1]
        outbox_db.delete_rows(self.conn, gone)
        return holders[len(gone) :]

    def _place(self, item: Pending, done: Commit) -> None:
        """Build the item and make room for it; or reject or refuse it."""
        try:
            stored, size = self._build(item)
        except StoreError as exc:
            # One bad message must not take the batch (or the writer) down with it.
            log.error("refusing to store a message: %s", exc)
            done.rejected.append((item, exc))
            return
        if not self._fits(size, done) and item.priority >= Priority.MEDIA:
            done.refused.append(item)
            self.seqs.give_back(stored.seq)  # nothing used it
            return
        self._add((item, stored, size), done)

    def _fits(self, size: int, done: Commit) -> bool:
        """Whether `size` more bytes fit the budget, evicting (§7) what may go to make room."""
        if self.bytes + done.added + size <= self._budget:
            return True  # fits even before counting what this transaction freed
        over = self.bytes - done.freed() + done.added + size - self._budget
        if over <= 0:
            return True
        evicted, carried = outbox_db.evict(self.conn, over)
        done.evicted += evicted
        done.carried += carried
        return self.bytes - done.freed() + done.added + size <= self._budget

    @staticmethod
    def _add(row: tuple[Pending, Stored, int], done: Commit) -> None:
        done.rows.append(row)
        done.added += row[2]

    def _eviction_notice(self, done: Commit, hist: bool) -> tuple[Pending, Stored, int]:
        body = eviction_notice(done.evicted, done.carried)
        topic = envelope.event_topic(self._dev, "notice")
        note = Pending("notice", Priority.NOTICE, hist, body, topic, None, None, None)
        stored, size = self._build(note)
        return note, stored, size

    def _now(self) -> TimeStamp:
        """The time fields of the commit under way: read once, since every message of a
        group commit is created at the same moment (a clock reading costs a system call)."""
        if self._batch_stamp is None:
            self._batch_stamp = self._stamp()
        return self._batch_stamp

    def _build(self, item: Pending) -> tuple[Stored, int]:
        """Build the item with the next seq; a raw row or a rejected one takes none."""
        seq = self.seqs.last + 1
        stored, size = build(item, dev=self._dev, seq=seq, stamp=self._now)
        if stored.seq:
            self.seqs.take()
        return stored, size

    def _insert(self, rows: list[tuple[Pending, Stored, int]]) -> None:
        now = self._now().ts
        first = self._number + 1
        self._number += len(rows)
        # Priorities were checked by `build`: rowid_of's own check is not needed per row.
        self.conn.executemany(
            INSERT,
            [
                (
                    s.priority << SHIFT | n,
                    s.priority,
                    s.seq or None,
                    i.kind,
                    size,
                    i.hist,
                    now,
                    int(i.journal and bool(s.seq)),
                    i.group,
                    s.topic,
                    s.payload,
                )
                for n, (i, s, size) in enumerate(rows, first)
            ],
        )

    def _account(self, done: Commit) -> None:
        """Counters after a durable commit."""
        self.depth += len(done.rows) - done.dropped[0] - done.acked[0] - len(done.evicted)
        self.stored_bytes += sum(len(s.payload) for _, s, _ in done.rows)
        self.bytes += done.added - done.freed()
        if done.acked[0] and self.bytes < self._budget:
            self.media_refused = False  # PUBACKs made room
        if done.refused:
            self.media_refused = True
        if done.evicted:
            log.warning("outbox over budget: evicted %d messages", len(done.evicted))

    # ----- re-chunking -----------------------------------------
    def rechunk(self, group: str, size: int) -> str:
        """Re-split a whole photo's chunks to `size` bytes: `done`, or why not (outbox_fix)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            delta = outbox_fix.rechunk(self.conn, group, size, self.next_rowid)
            self.conn.execute("COMMIT")
        except (sqlite3.Error, ValueError) as exc:
            self.rollback()
            log.error("re-chunking media %s failed: %s", group, exc)
            return "failed"
        if isinstance(delta, str):
            return delta
        self.depth += delta[0]
        self.bytes += delta[1]
        return "done"

    def rollback(self) -> None:
        """End a failed transaction (if SQLite has not already)."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.debug("rollback: %s", exc)
