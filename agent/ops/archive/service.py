"""The archiver's loop: take a batch from the MQTT client, commit it, then acknowledge it.

The order is the whole guarantee: a message is acknowledged to the broker only after the
transaction holding its rows has committed. A crash before the commit leaves it unacknowledged
and the broker redelivers it (persistent session); a crash between commit and acknowledgement
redelivers a message already written, and the primary key drops the copy. So nothing is lost
and no row is written twice, whatever is killed when.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.ops.archive.records import ChunkRow, MediaRow, Row, rows_for
from agent.ops.archive.store import Store, StoreError
from agent.ops.mqtt import Message
from firmware_bridge.aio import Backoff

log = logging.getLogger(__name__)


class Source(Protocol):
    """The MQTT side: a queue of received messages and the manual acknowledgement."""

    messages: queue.Queue[Message]

    def ack(self, msg: Message) -> bool: ...


@dataclass
class Counters:
    """What the archiver did so far (shown in systemd STATUS= and logged at exit)."""

    messages: int = 0
    rows: int = 0
    batches: int = 0
    retries: int = 0
    stale_acks: int = 0
    photos: int = 0


@dataclass
class Archiver:
    """Batches messages from `source` into `store` until `stop` is set.

    `batch_max` bounds a transaction; the broker's Receive Maximum (set larger) keeps the
    next batch arriving while one commits. `tick` is called at least once a second (watchdog).
    """

    source: Source
    store: Store
    media_dir: Path
    stop: threading.Event
    batch_max: int = 500
    # Capped well under the unit's WatchdogSec: the loop ticks between retries.
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=10.0))
    rng: random.Random = field(default_factory=random.Random)
    tick: Callable[[Counters], None] = lambda _c: None
    counters: Counters = field(default_factory=Counters)

    def run(self) -> Counters:
        """Archive until `stop` is set; unacknowledged messages are left to the broker."""
        self._sweep()
        while not self.stop.is_set():
            batch = self._take()
            self.tick(self.counters)
            if batch and self._commit(batch):
                self._ack(batch)
        return self.counters

    def _take(self) -> list[Message]:
        """Wait up to 1 s for a message, then take what else is already queued."""
        try:
            batch = [self.source.messages.get(timeout=1.0)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_max:
            try:
                batch.append(self.source.messages.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[Message]) -> bool:
        """Write the batch's rows, retrying with backoff; False when stopped first."""
        rows: list[Row] = []
        for m in batch:
            rows.extend(rows_for(m.topic, m.payload, m.received_ms))
        attempt = 0
        while True:
            try:
                self.store.write(rows)
                break
            except StoreError as exc:
                delay = self.backoff.delay(attempt, self.rng)
                attempt += 1
                self.counters.retries += 1
                log.warning("%s; retrying in %.1f s (nothing acknowledged)", exc, delay)
                self.tick(self.counters)  # waiting on the database is alive, not hung
                if self.stop.wait(delay):
                    return False
        self.counters.messages += len(batch)
        self.counters.rows += len(rows)
        self.counters.batches += 1
        self._finish_media(rows)
        return True

    def _sweep(self) -> None:
        try:
            self._finish_keys(set(self.store.unfinished_media()))
        except StoreError as exc:
            log.warning("start-up photo sweep skipped: %s", exc)

    def _finish_media(self, rows: list[Row]) -> None:
        """Assemble every photo this batch touched (after the commit, so two archivers that
        each hold half of a photo see each other's rows: the later one finishes it)."""
        self._finish_keys({(r.dev, r.media_id) for r in rows if isinstance(r, ChunkRow | MediaRow)})

    def _finish_keys(self, keys: set[tuple[str, str]]) -> None:
        for dev, media_id in sorted(keys):
            try:
                if self.store.finish_media(dev, media_id, self.media_dir) == "ok":
                    self.counters.photos += 1
            except (StoreError, OSError) as exc:
                # The rows are committed; the next chunk or a restart finishes the photo.
                log.warning("photo %s/%s not assembled yet: %s", dev, media_id, exc)

    def _ack(self, batch: list[Message]) -> None:
        for m in batch:
            if not self.source.ack(m):
                self.counters.stale_acks += 1


def status_line(c: Counters, started: float, now: float | None = None) -> str:
    """One line for systemd STATUS= and the exit log."""
    secs = max(1e-9, (now or time.monotonic()) - started)
    return (
        f"archived {c.messages} messages ({c.rows} rows, {c.photos} photos) "
        f"in {c.batches} batches, {c.messages / secs:.0f}/s; {c.retries} database retries"
    )
