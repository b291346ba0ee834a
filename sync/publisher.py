"""Outbox -> MQTT session: §7 send order, a bounded in-flight window, delete after PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sync.errors import LinkError, StoreError
from sync.limits import BrokerLimits
from sync.link import Session
from sync.messages import Priority
from sync.outbox import Outbox
from sync.outbox_rows import Row
from sync.poison import RetryPolicy, Strikes, Verdict, aside_notice, oversize
from sync.spawn import Spawn, spawn_task

log = logging.getLogger(__name__)

FETCH = 512
DELETE_BATCH = 900  # below SQLite's bound-parameter limit
_START = (-1, -1)


@dataclass(slots=True)
class _InFlight:
    row: Row
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
        policy: RetryPolicy | None = None,
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
        # Failure memory across sessions; rows waiting to be set aside (by the next loop turn).
        self.strikes = Strikes(policy or RetryPolicy())
        self._aside: dict[int, tuple[Row, str]] = {}
        self._stuck_notes: dict[int, tuple[Row, str]] = {}  # `message_stuck` notices to store
        self._noticed: set[int] = set()  # stuck rows central was told about (once per run)
        self._group_holds: dict[int, str] = {}  # held row -> its photo: the rest waits (§4 order)
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

    def status(self) -> dict[str, int]:
        """Counts for `status`: messages set aside in this run, stuck ones, suspects."""
        s = self.strikes
        return {"set_aside": s.set_aside, "stuck": len(s.stuck), "suspect": len(s.suspects)}

    def _verdict(self, row: Row, verdict: Verdict, code: str) -> None:
        """Act on a failure verdict; `code` is the notice's reason."""
        if verdict is Verdict.SET_ASIDE:
            log.error("outbox row %d (%s) set aside: %s", row.rowid, row.topic, code)
            self._aside[row.rowid] = (row, code)
        elif verdict is Verdict.STUCK:
            log.error("priority %d message %s is stuck: %s", row.priority, row.topic, code)
            if row.rowid not in self._noticed:
                self._noticed.add(row.rowid)
                self._stuck_notes[row.rowid] = (row, code)
        if row.group is not None and verdict is not Verdict.SET_ASIDE:
            self._group_holds[row.rowid] = row.group
        self._appended(row.priority)

    async def run(self, session: Session) -> None:
        """Publish until the session ends; aborts it when PUBACKs stop coming."""
        limits = session.limits
        window = limits.window(self._window)
        low_cap = max(1, int(window * self._low_share))
        inflight: dict[int, _InFlight] = {}
        buffer: deque[Row] = deque()
        cursor = _START
        low = 0
        strikes = self.strikes

        def on_puback(mid: int, ok: bool) -> None:
            nonlocal low
            entry = inflight.pop(mid, None)
            if entry is None:
                return
            row = entry.row
            if row.priority >= Priority.DETECTION:
                low -= 1
            if ok:
                self._acked.append(row.rowid)
                self._done.add(row.rowid)
                self._ack_ready.set()
                self.acked += 1
                strikes.acked(row.rowid)
                byp = self.acked_by_priority
                byp[row.priority] = byp.get(row.priority, 0) + 1
            else:
                # Refused (reason code >= 0x80): held, retried a few times, then set aside.
                log.error("broker refused outbox row %d (%s)", row.rowid, row.topic)
                verdict = strikes.failed(row.rowid, row.priority, self._now())
                self._verdict(row, verdict, "refused")
            self.inflight = len(inflight)
            self._wake.set()

        session.on_puback = on_puback
        self._reset_to = None
        strikes.new_session()
        try:
            while True:
                # Cleared before looking, never after: a row committed while a fetch is under
                # way sets it again, so the wait below cannot miss it.
                self._wake.clear()
                released = strikes.release(self._now())
                if released:
                    # Held rows sort before the cursor: scan again from the first of them.
                    cursor = min(cursor, min((p, r - 1) for p, r in released))
                    buffer.clear()
                if self._aside or self._stuck_notes:
                    gone = await self._set_aside_all()
                    # A set-aside photo's other rows are deleted too: none of them goes out.
                    kept = [r for r in buffer if r.group is None or r.group not in gone]
                    buffer = deque(kept)
                if self._reset_to is not None:
                    cursor = _rescan_from(cursor, buffer, self._reset_to)
                    self._reset_to = None
                if not buffer:
                    live_only = self._gate_open is not None and not self._gate_open()
                    rows = await self._outbox.fetch(cursor, FETCH, live_only=live_only)
                    if rows:
                        cursor = (rows[-1].priority, rows[-1].rowid)
                        skip = {e.row.rowid for e in inflight.values()} | self._done
                        buffer.extend(r for r in rows if not self._skipped(r, skip))
                        continue
                    await self._idle(inflight, session)
                    continue
                head = buffer[0]
                if self._skipped(head, ()):
                    buffer.popleft()  # held or set aside since it was fetched
                    continue
                if limits.max_qos < 1:
                    await self._idle(inflight, session)  # QoS 1 impossible: keep everything
                    continue
                if not limits.fits(head.topic, len(head.payload)):
                    buffer.popleft()
                    await self._too_large(head, limits)
                    buffer.clear()
                    cursor = min(cursor, (head.priority, head.rowid - 1))
                    continue
                probe = head.rowid in strikes.suspects
                busy = len(inflight) >= window or (
                    head.priority >= Priority.DETECTION and low >= low_cap
                )
                # A suspect (in flight at a drop) goes alone, so a drop now is its own.
                if busy or (inflight and (probe or _probing(inflight, strikes))):
                    await self._idle(inflight, session)
                    continue
                buffer.popleft()
                mid = session.publish(head.topic, head.payload, 1)
                inflight[mid] = _InFlight(head, self._now())
                if head.priority >= Priority.DETECTION:
                    low += 1
                self.sent += 1
                self.inflight = len(inflight)
        except LinkError as exc:
            log.info("publisher stopped: %s", exc)
        finally:
            session.on_puback = lambda mid, ok: None
            self.inflight = 0
            if session.closed.done() and inflight:
                rows = [e.row for e in inflight.values()]
                verdicts = strikes.dropped(
                    [r.rowid for r in rows], [r.priority for r in rows], self._now()
                )
                for row, verdict in zip(rows, verdicts, strict=False):
                    self._verdict(row, verdict, "link_dropped")

    def _skipped(self, row: Row, skip: Collection[int]) -> bool:
        if row.rowid in skip or self.strikes.held(row.rowid) or row.rowid in self._aside:
            return True
        if row.group is None or not self._group_holds:
            return False
        for rowid in [r for r in self._group_holds if not self.strikes.held(r)]:
            del self._group_holds[rowid]
        return row.group in self._group_holds.values()

    async def _too_large(self, row: Row, limits: BrokerLimits) -> None:
        """Re-chunk a whole photo to fit, or set the message aside (priority 0-1: stuck)."""
        now = self._now()
        if row.group is not None:
            size = limits.chunk_size(row.topic.rsplit("/", 1)[0])
            result = await self._outbox.rechunk(row.group, size) if size else "too_small"
            if result == "done":
                log.warning(
                    "media %s re-chunked to %d bytes (broker Maximum Packet Size %s)",
                    row.group,
                    size,
                    limits.max_packet,
                )
                return
            if result == "incomplete":
                # Its `media` event is still being stored: look again shortly, a bounded number
                # of times (a crash between the chunks and the event leaves it incomplete).
                self._verdict(row, self.strikes.failed(row.rowid, row.priority, now), "too_large")
                return
        log.error("%s is larger than the broker's %s bytes", row.topic, limits.max_packet)
        self._verdict(row, oversize(self.strikes, row.rowid, row.priority, now), "too_large")

    async def _set_aside_all(self) -> set[str]:
        """Remove the rows waiting to be set aside, each with its notice, and tell central
        about newly stuck ones (kept); return the photos set aside."""
        groups: set[str] = set()
        for rowid, (row, code) in list(self._aside.items()):
            body = aside_notice(row.topic, row.payload, row.group, code)
            try:
                await self._outbox.set_aside(body, [row.rowid], row.group)
            except StoreError as exc:
                log.error("could not set aside row %d: %s (kept for now)", rowid, exc)
                break
            del self._aside[rowid]
            if row.group is not None:
                groups.add(row.group)
        for rowid, (row, code) in list(self._stuck_notes.items()):
            body = aside_notice(row.topic, row.payload, row.group, code, "message_stuck")
            try:
                await self._outbox.append("notice", body)
            except StoreError as exc:
                log.error("could not store the stuck notice of row %d: %s", rowid, exc)
                break
            del self._stuck_notes[rowid]
        return groups

    async def _idle(self, inflight: dict[int, _InFlight], session: Session) -> None:
        """Wait for a PUBACK, a new row, a gate change or a hold to pass; abort when the
        oldest PUBACK is late."""
        now = self._now()
        release = self.strikes.next_release()
        wait = None if release is None else max(0.0, release - now)
        if inflight:
            oldest = next(iter(inflight.values()))
            remaining = oldest.sent_at + self._timeout - now
            if remaining <= 0:
                session.abort(f"no PUBACK for {self._timeout:.0f} s")
                raise LinkError("PUBACK timeout")
            wait = remaining if wait is None else min(wait, remaining)
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives
        # as the wake-up does, and the session worker then never ends (an agent that hangs on
        # stop or on a config restart, seen in the 20-agent fleet test).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

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


def _probing(inflight: dict[int, _InFlight], strikes: Strikes) -> bool:
    """Whether a suspect is out alone (nothing else goes until its PUBACK)."""
    return len(inflight) == 1 and next(iter(inflight.values())).row.rowid in strikes.suspects


def _rescan_from(cursor: tuple[int, int], buffer: deque[Row], priority: int) -> tuple[int, int]:
    """Move the scan back when a row of `priority` would sort before what is still queued."""
    # The cursor is at or past every buffered row (rows in flight are skipped but passed).
    if cursor[0] <= priority:
        return cursor  # the new row sorts after the cursor: the scan will reach it
    if buffer:
        cursor = (buffer[0].priority, buffer[0].rowid - 1)
        buffer.clear()
    return min(cursor, (priority, -1))
