"""The patrol driver's way into the outbox, and the events it refused (docs/patrol.md).

`Outlet` stores the engine's events in the order decided, each with a copy in the outbox
journal (agent/patrol/persistence.py); a check-in gets the hash chain's `prev` at the moment it is
stored. The engine counts a check-in as done when it decides it, so an event the outbox
refuses (disk full, outbox closed) must not be dropped: it waits in the `UnsentQueue`, in
memory and in patrol.json, every later event queues behind it, and the queue is retried until
the outbox takes it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import StoreError
from agent.patrol.core import PatrolEngine
from agent.patrol.persistence import (
    ChainHead,
    committed_checkins,
    journal_seq,
    recover,
    replay_progress,
    stored_since,
)
from agent.patrol.reporter import Reporter
from sync.messages import Stored
from sync.outbox import Outbox

log = logging.getLogger(__name__)

KINDS = ("checkin", "patrol")
LIMIT = 1000  # events; beyond it the oldest progress events go, check-ins never
RETRY_MAX_S = 30.0  # the idle retry backs off up to this while the outbox keeps refusing


@dataclass(frozen=True, slots=True)
class Unsent:
    """An event not stored yet: kind, body without `prev` (photos taken), priority or None."""

    kind: str
    body: Mapping[str, Any]
    priority: int | None = None

    @property
    def photos(self) -> list[dict[str, Any]]:
        """The media refs the body names (sent after the event is stored)."""
        return [dict(ref) for ref in self.body.get("photos", [])]

    def describe(self) -> str:
        """`checkin t-1/cp-2` or `patrol t-1 started`, for log lines."""
        b = self.body
        if self.kind == "checkin":
            return f"checkin {b.get('task_id')}/{b.get('checkpoint_id')}"
        return f"{self.kind} {b.get('task_id')} {b.get('event')}"

    def to_json(self) -> dict[str, Any]:
        """JSON form for patrol.json."""
        return {"kind": self.kind, "body": dict(self.body), "priority": self.priority}

    @staticmethod
    def from_json(data: object) -> Unsent | None:
        """Parse the patrol.json form; None when it is malformed."""
        if not isinstance(data, Mapping):
            return None
        kind, body, prio = data.get("kind"), data.get("body"), data.get("priority")
        if kind not in KINDS or not isinstance(body, Mapping) or "prev" in body:
            return None
        if prio is not None and (type(prio) is not int or not 0 <= prio <= 4):
            return None
        photos = body.get("photos", [])
        if not isinstance(photos, list) or not all(
            isinstance(r, Mapping) and isinstance(r.get("media_id"), str) for r in photos
        ):
            return None
        return Unsent(str(kind), dict(body), prio)


class UnsentQueue:
    """The ordered queue of unsent events with its bound and retry pacing (one owner, no lock)."""

    def __init__(
        self, items: Iterable[Unsent] = (), *, limit: int = LIMIT, retry_s: float = 1.0
    ) -> None:
        self._items: deque[Unsent] = deque(items)
        self._limit = limit
        self._retry_ms = int(retry_s * 1000)
        self._delay_ms = self._retry_ms
        self._next_ms = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: Unsent) -> None:
        """Queue behind the rest; over the bound the oldest progress event goes (logged)."""
        self._items.append(item)
        while len(self._items) > self._limit:
            at = next((i for i, u in enumerate(self._items) if u.kind != "checkin"), None)
            if at is None:
                # Only check-ins: at most one per checkpoint and task, so kept beyond the bound.
                break
            dropped = self._items[at]
            del self._items[at]
            log.error("over %d unsent events: dropped %s", self._limit, dropped.describe())

    def due(self, now_ms: int) -> bool:
        """Whether an idle retry (no new events) is due; it backs off while refused."""
        return bool(self._items) and now_ms >= self._next_ms

    async def flush(
        self, store: Callable[[Unsent], Awaitable[Stored]], now_ms: int
    ) -> list[tuple[Unsent, Stored]]:
        """Store queued events in order, stopping at the first StoreError; return the stored."""
        done: list[tuple[Unsent, Stored]] = []
        while self._items:
            try:
                stored = await store(self._items[0])
            except StoreError as exc:
                self._next_ms = now_ms + self._delay_ms
                if not done:
                    self._delay_ms = min(self._delay_ms * 2, int(RETRY_MAX_S * 1000))
                log.debug("%d unsent event(s) still refused: %s", len(self._items), exc)
                break
            # Off the queue at once: the commit has happened, whatever comes next.
            done.append((self._items.popleft(), stored))
        if done:
            self._delay_ms = self._retry_ms
        return done

    def forget_stored(self, stored: Sequence[tuple[object, Mapping[str, Any]]]) -> int:
        """Drop events a crash left queued after storing them; return how many.

        `stored`: (kind, body) of the driver's events stored since the queue was saved, in
        seq order. While anything was queued, the queue's head went first, so the events of
        it that were stored are the ones `stored` starts with.
        """
        n = 0
        for kind, body in stored:
            if n == len(self._items):
                break
            item = self._items[n]
            if kind != item.kind or {k: v for k, v in body.items() if k != "prev"} != item.body:
                break
            n += 1
        for _ in range(n):
            log.warning("%s was stored before a crash; not stored again", self._items[0].describe())
            self._items.popleft()
        return n

    def media_ids(self) -> set[str]:
        """Photos named by queued events: not yet sent, so they must not be reaped."""
        return {str(ref["media_id"]) for u in self._items for ref in u.photos}

    def to_json(self) -> list[dict[str, Any]]:
        """JSON form for patrol.json."""
        return [u.to_json() for u in self._items]

    @staticmethod
    def from_json(data: object, *, retry_s: float = 1.0) -> UnsentQueue:
        """Parse the patrol.json form; absent is empty, malformed entries are logged and left."""
        if data is None:
            return UnsentQueue(retry_s=retry_s)
        if not isinstance(data, list):
            log.error("patrol state: unsent events %.200r are malformed; none resent", data)
            return UnsentQueue(retry_s=retry_s)
        items = []
        for entry in data:
            item = Unsent.from_json(entry)
            if item is None:
                log.error("patrol state: unsent event %.200r is malformed; not sent", entry)
            else:
                items.append(item)
        if items:
            log.warning(
                "%d event(s) the outbox refused before the restart still to store", len(items)
            )
        return UnsentQueue(items, retry_s=retry_s)


class Outlet:
    """Stores the driver's events in decision order, journalled, check-ins chained; what the
    outbox refuses is queued. `chain`, `unsent` and `last_seq` go into patrol.json."""

    def __init__(self, outbox: Outbox, reporter: Reporter, *, retry_s: float) -> None:
        self._outbox = outbox
        self.reporter = reporter  # feedback, errors and the photos' chunks
        self.chain = ChainHead()
        self.unsent = UnsentQueue(retry_s=retry_s)
        self.last_seq: int | None = None  # of the last event stored: patrol.json journal_seq
        self._unreleased = False  # journal rows the next successful save covers
        self._retry_s = retry_s

    async def restore(self, outbox: Outbox, saved: Mapping[str, Any], engine: PatrolEngine) -> bool:
        """Chain, queue and journal seq from patrol.json, repaired from the journal; applies the
        check-ins and progress found there to `engine` and says whether there were any."""
        chain = ChainHead.from_json(saved.get("chain"))
        jseq = journal_seq(saved, chain)
        if jseq is not None and jseq > outbox.seq:
            # The outbox started again at seq 1 (state_reset): so does the chain (§3).
            log.warning("outbox seq restarted below the saved seq %d; new chain", jseq)
            chain, jseq = ChainHead(), None
        # Without patrol.json the journal was released against a lost file, and a file from
        # before the journal existed may lag it: then the outbox is scanned too (slow, once).
        scan = "chain" not in saved or "journal_seq" not in saved
        found = await committed_checkins(outbox, chain.seq, scan_outbox=scan)
        self.chain = recover(chain, engine, found)
        since = await stored_since(outbox, jseq)
        # Progress events stored after the save (started, missed, ended) must not come again.
        progressed = replay_progress(
            engine, [c for c in since if c.message.get("kind") == "patrol"]
        )
        self.unsent = UnsentQueue.from_json(saved.get("unsent"), retry_s=self._retry_s)
        self.unsent.forget_stored([(c.message.get("kind"), _body(c.message)) for c in since])
        seqs = [c.seq for c in (*found, *since)]
        self.last_seq = max([*seqs, jseq or 0]) if seqs else jseq
        self._unreleased = bool(seqs)
        return bool(found) or progressed

    async def store(self, item: Unsent) -> Stored:
        """Commit one event with its journal copy; a check-in gets `prev` and moves the head."""
        body = dict(item.body)
        if item.kind == "checkin":
            body["prev"] = self.chain.head
        stored = await self.reporter.events.emit(
            item.kind, body, priority=item.priority, journal=True
        )
        self.reporter.counts.events += 1
        self.last_seq, self._unreleased = stored.seq, True
        if item.kind == "checkin":
            # In memory at once (the next check-in may be in this batch); on disk at batch end.
            self.chain = ChainHead.of(stored.payload, stored.seq)
            self.reporter.counts.checkins += 1
        return stored

    async def deliver(self, item: Unsent) -> Stored | None:
        """Store `item`, or queue it behind what waits already (None; feedback "error")."""
        rep = self.reporter
        if len(self.unsent):
            log.warning("%s queued behind %d unsent event(s)", item.describe(), len(self.unsent))
        else:
            try:
                return await self.store(item)
            except StoreError as exc:
                rep.error(f"{item.describe()} not stored, queued: {exc}")
        self.unsent.push(item)
        rep.signal("error")
        return None

    async def flush(self, now_ms: int) -> int:
        """Retry the queue in order (photo chunks after each event); return how many went."""
        return len(await self.unsent.flush(self._store_late, now_ms))

    async def _store_late(self, item: Unsent) -> Stored:
        stored = await self.store(item)
        level = logging.WARNING if item.kind == "checkin" else logging.INFO
        log.log(level, "%s stored after waiting (seq %d)", item.describe(), stored.seq)
        # At once: off the queue its photos are no longer kept from the media reaper.
        await self.reporter.send_media(item.photos, stored)
        return stored

    async def release(self, outbox: Outbox) -> None:
        """After patrol.json was saved with `last_seq`: drop the journal's copies up to it.

        The chain head's own copy stays, so that a lost patrol.json still finds the head (no
        second `prev:null` in the middle of the seq range).
        """
        if not self._unreleased or self.last_seq is None:
            return
        try:
            # Not waited for: the next append's transaction carries it (flash wear).
            await outbox.journal_release(self.last_seq, keep_seq=self.chain.seq, wait=False)
        except StoreError as exc:
            # Harmless: rows at or below the saved seq are skipped at start, released later.
            log.warning("journal not released: %s", exc)
            return
        self._unreleased = False


def _body(message: Mapping[str, Any]) -> Mapping[str, Any]:
    body = message.get("body")
    return body if isinstance(body, Mapping) else {}
