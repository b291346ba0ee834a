"""Outbox -> MQTT session: §7 send order, a bounded in-flight window, delete after PUBACK."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sync.errors import LinkError
from sync.link import Session
from sync.messages import Priority
from sync.outbox import Outbox
from sync.outbox_rows import Row
from sync.spawn import Spawn, spawn_task

log = logging.getLogger(__name__)

FETCH = 512
DELETE_BATCH = 900  # below SQLite's bound-parameter limit
_START = (-1, -1)


@dataclass(slots=True)
class _InFlight:
    rowid: int
    priority: int
    sent_at: float


class Publisher:
    """Drains the outbox into whichever session is live; `async with` runs the ack deleter."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        window: int,
        low_share: float,
        puback_timeout_s: float,
        gate_open: Callable[[], bool] | None = None,
        monotonic: Callable[[], float] | None = None,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self._outbox = outbox
        self._window = window
        self._low_share = low_share
        self._timeout = puback_timeout_s
        self._gate_open = gate_open  # None: no flush gate configured
        self._now = monotonic or asyncio.get_running_loop().time
        self._wake = asyncio.Event()
        self._reset_to: int | None = None
        self._acked: list[int] = []
        self._done: set[int] = set()  # PUBACKed rows until their delete commits: never resend
        self._ack_ready = asyncio.Event()
        self._deleter: asyncio.Task[None] | None = None
        self.inflight = 0
        self.sent = 0
        self.acked = 0
        self.acked_by_priority: dict[int, int] = {}  # metrics: delivered per priority
        outbox.subscribe(self._appended)

    async def __aenter__(self) -> Publisher:
        self._deleter = self._spawn("outbox-deleter", self._delete_loop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._deleter is not None:
            self._deleter.cancel()
            await asyncio.gather(self._deleter, return_exceptions=True)
        await self._flush_acked()  # PUBACKs already received must not cause resends later

    def _appended(self, priority: int) -> None:
        # A new row may outrank what is buffered: restart the scan from its priority.
        self._reset_to = priority if self._reset_to is None else min(self._reset_to, priority)
        self._wake.set()

    def gate_changed(self) -> None:
        """central/state changed: rescan from the top (hist rows may now go, or must wait)."""
        self._reset_to = -1
        self._wake.set()

    async def run(self, session: Session) -> None:
        """Publish until the session ends; aborts it when PUBACKs stop coming."""
        window = max(1, min(self._window, session.receive_maximum))
        low_cap = max(1, int(window * self._low_share))
        inflight: dict[int, _InFlight] = {}
        rejected: set[int] = set()
        buffer: deque[Row] = deque()
        cursor = _START
        low = 0

        def on_puback(mid: int, ok: bool) -> None:
            nonlocal low
            entry = inflight.pop(mid, None)
            if entry is None:
                return
            if entry.priority >= Priority.DETECTION:
                low -= 1
            if ok:
                self._acked.append(entry.rowid)
                self._done.add(entry.rowid)
                self._ack_ready.set()
                self.acked += 1
                byp = self.acked_by_priority
                byp[entry.priority] = byp.get(entry.priority, 0) + 1
            else:
                # The broker refused it: keep it stored, retry on the next session.
                log.error("broker refused outbox row %d; keeping it", entry.rowid)
                rejected.add(entry.rowid)
            self.inflight = len(inflight)
            self._wake.set()

        session.on_puback = on_puback
        self._reset_to = None
        try:
            while True:
                # Cleared before looking, never after: a row committed while a fetch is under
                # way sets it again, so the wait below cannot miss it.
                self._wake.clear()
                if self._reset_to is not None:
                    cursor = _rescan_from(cursor, buffer, self._reset_to)
                    self._reset_to = None
                if not buffer:
                    live_only = self._gate_open is not None and not self._gate_open()
                    rows = await self._outbox.fetch(cursor, FETCH, live_only=live_only)
                    if rows:
                        cursor = (rows[-1].priority, rows[-1].rowid)
                        skip = {e.rowid for e in inflight.values()} | rejected | self._done
                        buffer.extend(r for r in rows if r.rowid not in skip)
                        continue
                    await self._idle(inflight, session)
                    continue
                head = buffer[0]
                if len(inflight) >= window or (
                    head.priority >= Priority.DETECTION and low >= low_cap
                ):
                    await self._idle(inflight, session)
                    continue
                buffer.popleft()
                mid = session.publish(head.topic, head.payload, 1)
                inflight[mid] = _InFlight(head.rowid, head.priority, self._now())
                if head.priority >= Priority.DETECTION:
                    low += 1
                self.sent += 1
                self.inflight = len(inflight)
        except LinkError as exc:
            log.info("publisher stopped: %s", exc)
        finally:
            session.on_puback = lambda mid, ok: None
            self.inflight = 0

    async def _idle(self, inflight: dict[int, _InFlight], session: Session) -> None:
        """Wait for a PUBACK, a new row or a gate change; abort when the oldest PUBACK is late."""
        if not inflight:
            await self._wake.wait()
            return
        oldest = next(iter(inflight.values()))
        remaining = oldest.sent_at + self._timeout - self._now()
        if remaining > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
                return
            except TimeoutError:
                pass
        session.abort(f"no PUBACK for {self._timeout:.0f} s")
        raise LinkError("PUBACK timeout")

    async def _delete_loop(self) -> None:
        while True:
            await self._ack_ready.wait()
            self._ack_ready.clear()
            await self._flush_acked()

    async def _flush_acked(self) -> None:
        while self._acked:
            batch, self._acked = self._acked[:DELETE_BATCH], self._acked[DELETE_BATCH:]
            await self._outbox.delete(batch)
            self._done.difference_update(batch)


def _rescan_from(cursor: tuple[int, int], buffer: deque[Row], priority: int) -> tuple[int, int]:
    """Move the scan back when a row of `priority` would sort before what is still queued."""
    # The cursor is at or past every buffered row (rows in flight are skipped but passed).
    if cursor[0] <= priority:
        return cursor  # the new row sorts after the cursor: the scan will reach it
    if buffer:
        cursor = (buffer[0].priority, buffer[0].rowid - 1)
        buffer.clear()
    return min(cursor, (priority, -1))
