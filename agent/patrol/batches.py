"""The patrol driver's batches: an engine call, the events it decided, then patrol.json saved.

Every engine call and the events it produces run as one batch under one lock, in a task of
their own, so a caller that is cancelled never leaves a batch half stored (docs/patrol.md).
`Batches` owns what a batch changes: the engine, the task set record, the `Outlet` (hash chain,
unsent queue) and the state file (agent/patrol/persistence.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.patrol.core import (
    CheckIn,
    CheckinParams,
    Decision,
    NoCheckpointInReach,
    PatrolEngine,
    Progress,
    TagIgnored,
    UnknownTag,
    parse_tasks_body,
)
from agent.patrol.early import EarlyPhotos
from agent.patrol.notices import Notices
from agent.patrol.persistence import StateFile, engine_from, state_doc
from agent.patrol.reporter import Reporter
from agent.patrol.unsent import Outlet, Unsent
from agent.patrol.views import Outcome, checkin_notice
from sync.envelope import TimeStamp
from sync.messages import Stored
from sync.outbox import Outbox

log = logging.getLogger(__name__)

Decide = Callable[[int, bool], list[Decision]]  # (now_ms, time_ok) -> engine decisions


class Batches:
    """Runs engine calls one batch at a time; `engine` and `record` are read by the driver.

    `run` returns the batch's outcomes once its events are stored (or queued) and the state
    saved; `close` lets the batches in progress finish and saves what changed.
    """

    def __init__(
        self,
        *,
        outbox: Outbox,
        reporter: Reporter,
        early: EarlyPhotos,
        notices: Notices,
        state_dir: Path,
        stamp: Callable[[], TimeStamp],
        mono_ms: Callable[[], int],
        params: CheckinParams,
        record: Mapping[str, Any] | None,
        retry_s: float,
    ) -> None:
        self._outbox, self._reporter, self._early, self._notices = outbox, reporter, early, notices
        self._stamp, self._mono_ms, self._params = stamp, mono_ms, params
        self._state = StateFile(state_dir, mono_ms)
        self.engine = PatrolEngine(params=params)
        self.record = record  # the tasks document the engine runs (None: none yet)
        self.out = Outlet(outbox, reporter, retry_s=retry_s)
        self._lock = asyncio.Lock()
        self._running: set[asyncio.Task[list[Outcome]]] = set()
        self._dirty = False  # engine state changed since the last save
        self._settled = True  # False while a batch is between its engine call and its save

    async def restore(self) -> None:
        """Engine, chain and unsent events from patrol.json, repaired from the outbox journal."""
        saved = await self._state.read()
        self.engine = engine_from(saved, self.record, self._params)
        if await self.out.restore(self._outbox, saved, self.engine):
            self._dirty = True

    def replace(self, record: Mapping[str, Any], now_ms: int, time_ok: bool) -> list[Decision]:
        """A `Decide`: the engine runs the task set of `record` (one not usable is logged)."""
        try:
            taskset = parse_tasks_body(record.get("body"))
        except ConfigError as exc:
            log.error("tasks ver %s not usable: %s", record.get("ver"), exc)
            return []
        self.record = record
        log.info("patrol task set ver %s: %d task(s)", record.get("ver"), len(taskset.tasks))
        return self.engine.replace_tasks(taskset, now_ms, time_ok)

    async def run(
        self, decide: Decide, *, dirty: bool = True, retry: bool = False
    ) -> list[Outcome]:
        """Run `decide` as a batch and return its outcomes; cancelling the caller does not cut
        the batch. `dirty`: the call changes the engine state; `retry`: store what waits even
        without decisions."""
        return await asyncio.shield(self._task(decide, dirty, retry))

    async def drain(self) -> None:
        """Until every batch started so far has stored its events (tests, bench)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def close(self, drain_s: float) -> None:
        """At exit: batches in progress get `drain_s` to finish (a check-in's photo may take a
        moment), the rest are cancelled; then the state is saved if a batch changed it and
        none was cut between its engine call and its save."""
        if self._running:
            _, late = await asyncio.wait(list(self._running), timeout=drain_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        async with self._lock:
            if self._settled and self._dirty:
                await self._save()

    async def save_due(self, interval_s: float) -> None:
        """The periodic save: when the state changed and the last save is `interval_s` old."""
        due = self._state.due(interval_s)
        if self._dirty and due:
            # Dwell runs, so a restart resumes a run within gap_s; not the gate alone.
            async with self._lock:
                await self._save(periodic=True)

    def _task(self, decide: Decide, dirty: bool, retry: bool) -> asyncio.Task[list[Outcome]]:
        # Its own task (the lock keeps batches in order): a cancelled caller does not cut it.
        task = asyncio.create_task(self._batch(decide, dirty, retry), name="patrol-batch")
        self._running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[list[Outcome]]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("patrol batch failed", exc_info=task.exception())

    async def _batch(self, decide: Decide, dirty: bool, retry: bool) -> list[Outcome]:
        async with self._lock:
            stamp = self._stamp()
            decisions = decide(stamp.ts, stamp.time_ok)
            self._dirty = self._dirty or dirty
            if not decisions and not (retry and len(self.out.unsent)):
                return []
            self._settled = False
            # What waits goes first: events and the chain in the order decided.
            flushed = await self.out.flush(self._mono_ms())
            out = [await self._emit(d) for d in decisions]
            if decisions or flushed:
                self._dirty = True  # a save that fails now is retried by the tick and at exit
                await self._save()
            self._settled = True
            return out

    async def _emit(self, d: Decision) -> Outcome:
        rep = self._reporter
        if isinstance(d, CheckIn | Progress):
            if isinstance(d, CheckIn):
                stored = await self._checkin(d)
            else:
                log.info("patrol %s %s (%d/%d)", d.task_id, d.event, d.done, d.total)
                stored = await self.out.deliver(Unsent("patrol", d.to_body()))
            return Outcome(d, stored)
        if isinstance(d, UnknownTag):
            log.info("tag %s is not a checkpoint", d.uid)
            rep.signal("error")
        elif isinstance(d, TagIgnored):
            log.info("tag %s of %s/%s ignored: %s", d.uid, d.task_id, d.checkpoint_id, d.reason)
            # Already checked in is not a mistake; a task out of its window is.
            rep.signal("ok" if d.reason == "resolved" else "error")
        elif isinstance(d, NoCheckpointInReach):
            log.info(
                "manual check-in refused: %s (nearest %s at %s m)",
                d.reason,
                d.nearest_checkpoint_id,
                d.nearest_dist_m,
            )
            rep.signal("error")
        return Outcome(d, None)

    async def _checkin(self, d: CheckIn) -> Stored | None:
        rep = self._reporter
        photos: list[dict[str, Any]] = []
        if d.needs_photo or rep.profile().checkin_photo:
            if d.method == "gps":
                # Taken while the dwell ran (agent/patrol/early.py): no capture on this path.
                photos = await self._early.claim((d.task_id, d.checkpoint_id))
            photos = photos or await rep.photos(d.fix, d.acc_m)
        # Photos now (they show the checkpoint), `prev` only when it is stored.
        stored = await self.out.deliver(Unsent("checkin", {**d.to_body(), "photos": photos}))
        if stored is None:
            return None
        deciding = d.deciding or d.fix
        if d.method == "gps" and deciding is not None and deciding.mono_ms is not None:
            rep.counts.fix_to_outbox_ms = self._mono_ms() - deciding.mono_ms
        log.info(
            "checked in at %s/%s by %s (seq %d)", d.task_id, d.checkpoint_id, d.method, stored.seq
        )
        rep.signal("ok")
        self._notices.publish(checkin_notice(d, stored, photos, self.engine.tasks))
        await rep.send_media(photos, stored)
        return stored

    async def _save(self, *, periodic: bool = False) -> None:
        """Write patrol.json (a periodic save may be skipped: `StateFile.write`), then release
        the journal rows it covers. A disk that refuses it is reported; the state stays dirty."""
        rec, out = self.record, self.out
        tasks = None if rec is None else {"id": rec.get("id"), "ver": rec.get("ver")}
        doc = state_doc(
            self.engine.snapshot(), out.chain, tasks, out.unsent.to_json(), out.last_seq
        )
        try:
            if not await self._state.write(doc, periodic=periodic):
                return
        except OSError as exc:
            # The journal keeps the check-ins; a restart repairs the head from it.
            self._reporter.error(f"patrol state not saved: {exc}")
            return
        self._dirty = False
        await out.release(self._outbox)
