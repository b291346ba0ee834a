"""Outbox -> MQTT session: §7 send order, a bounded in-flight window, delete after PUBACK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection

from sync.errors import LinkError, StoreError
from sync.limits import BrokerLimits
from sync.outbox import Outbox
from sync.outbox_rows import Row
from sync.poison import RetryPolicy, Strikes, Verdict, aside_notice, oversize
from sync.session import Session
from sync.spawn import Spawn, spawn_task
from sync.window import Scan, Window

log = logging.getLogger(__name__)

FETCH = 512
DELETE_BATCH = 900  # below SQLite's bound-parameter limit


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
        self._ack_ready = asyncio.Event()  # some PUBACKed rows wait to be deleted
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
        # PUBACKs already received must not cause resends later.
        await self._flush_acked(at_once=True)

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
        window = session.limits.window(self._window)
        win = Window(
            window,
            max(1, int(window * self._low_share)),
            acked=self._on_acked,
            refused=self._on_refused,
            wake=self._wake.set,
        )
        scan = Scan()
        session.on_puback = win.on_puback
        self._reset_to = None
        self.strikes.new_session()
        try:
            while True:
                # Cleared before looking, never after: a row committed while a fetch is under
                # way sets it again, so the wait below cannot miss it.
                self._wake.clear()
                await self._rescan(scan)
                if not scan.buffer and not await self._refill(scan, win):
                    await self._idle(win, session)
                elif scan.buffer:
                    await self._next(scan, win, session)
        except LinkError as exc:
            log.info("publisher stopped: %s", exc)
        finally:
            session.on_puback = lambda mid, ok: None
            self.inflight = 0
            if session.closed.done() and len(win):
                self._dropped(win.rows())

    def _on_acked(self, row: Row) -> None:
        self._acked.append(row.rowid)
        self._done.add(row.rowid)
        self._ack_ready.set()
        self.acked += 1
        self.strikes.acked(row.rowid)
        self.acked_by_priority[row.priority] = self.acked_by_priority.get(row.priority, 0) + 1
        self.inflight -= 1

    def _on_refused(self, row: Row) -> None:
        # Refused (reason code >= 0x80): held, retried a few times, then set aside.
        log.error("broker refused outbox row %d (%s)", row.rowid, row.topic)
        self._verdict(row, self.strikes.failed(row.rowid, row.priority, self._now()), "refused")
        self.inflight -= 1

    def _dropped(self, rows: list[Row]) -> None:
        """The link dropped with these rows in flight: strike them."""
        verdicts = self.strikes.dropped(
            [r.rowid for r in rows], [r.priority for r in rows], self._now()
        )
        for row, verdict in zip(rows, verdicts, strict=False):
            self._verdict(row, verdict, "link_dropped")

    async def _rescan(self, scan: Scan) -> None:
        """Move the scan back for held rows released, photos set aside and new rows."""
        released = self.strikes.release(self._now())
        if released:
            # Held rows sort before the cursor: scan again from the first of them.
            scan.rewind(min((p, r - 1) for p, r in released))
        if self._aside or self._stuck_notes:
            # A set-aside photo's other rows are deleted too: none of them goes out.
            scan.drop_groups(await self._set_aside_all())
        if self._reset_to is not None:
            scan.new_row(self._reset_to)
            self._reset_to = None

    async def _refill(self, scan: Scan, win: Window) -> bool:
        """Fetch the next rows after the cursor; False when there are none."""
        live_only = self._gate_open is not None and not self._gate_open()
        rows = await self._outbox.fetch(scan.cursor, FETCH, live_only=live_only)
        if not rows:
            return False
        skip = win.rowids() | self._done
        scan.refill(rows, lambda r: not self._skipped(r, skip))
        return True

    async def _next(self, scan: Scan, win: Window, session: Session) -> None:
        """Publish the head of the buffer, or wait, or deal with why it cannot go."""
        head = scan.buffer[0]
        limits = session.limits
        if self._skipped(head, ()):
            scan.buffer.popleft()  # held or set aside since it was fetched
            return
        if limits.max_qos < 1:
            await self._idle(win, session)  # QoS 1 impossible: keep everything
            return
        if not limits.fits(head.topic, len(head.payload)):
            await self._too_large(head, limits)
            scan.rewind((head.priority, head.rowid - 1))
            return
        # A suspect (in flight at a drop) goes alone, so a drop now is its own.
        suspects = self.strikes.suspects
        probe = head.rowid in suspects
        if win.full_for(head) or (len(win) and (probe or win.alone(suspects))):
            await self._idle(win, session)
            return
        scan.buffer.popleft()
        win.add(session.publish(head.topic, head.payload, 1), head, self._now())
        self.sent += 1
        if not suspects:
            self._burst(scan, win, session)
        self.inflight = len(win)

    def _burst(self, scan: Scan, win: Window, session: Session) -> None:
        """Publish the rows after the head that can go at once, in order, without a turn of
        `run` each (a backlog drains a window at a time); stop at the first that cannot."""
        buffer, limits, now = scan.buffer, session.limits, self._now()
        while buffer and len(win) < win.size:
            row = buffer[0]
            if (
                self._skipped(row, ())
                or win.full_for(row)
                or not limits.fits(row.topic, len(row.payload))
            ):
                return  # `_next` deals with it on the next turn
            buffer.popleft()
            win.add(session.publish(row.topic, row.payload, 1), row, now)
            self.sent += 1

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

    async def _idle(self, win: Window, session: Session) -> None:
        """Wait for a PUBACK, a new row, a gate change or a hold to pass; abort when the
        oldest PUBACK is late."""
        now = self._now()
        release = self.strikes.next_release()
        wait = None if release is None else max(0.0, release - now)
        oldest = win.oldest_sent()
        if oldest is not None:
            remaining = oldest + self._timeout - now
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

    async def _flush_acked(self, *, at_once: bool = False) -> None:
        """Delete the PUBACKed rows (the outbox lets the next append carry them)."""
        while self._acked:
            batch, self._acked = self._acked[:DELETE_BATCH], self._acked[DELETE_BATCH:]
            await self._outbox.delete(batch, at_once=at_once)
            self._done.difference_update(batch)
