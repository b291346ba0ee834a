"""PatrolDriver: fixes, tag scans and presses in; check-ins, progress, incidents and SOS out.

The pure PatrolEngine decides; the driver stores what it decided in the outbox (photos first,
then the event with its hash-chain `prev`, then the photo chunks), gives the person feedback,
and keeps the engine snapshot, chain head and the events the outbox refused (kept in order
until it takes them: agent/patrol/unsent.py) in state_dir/patrol.json (agent/patrol/persistence.py).
Every engine call and the events it produces run as one batch under one lock, in a task of
their own, so a caller that is cancelled never leaves a batch half stored (docs/patrol.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from agent.config.model import ModeProfile
from agent.errors import ConfigError, DeviceError, StoreError
from agent.events import Events, EventSink
from agent.media import MediaStore
from agent.patrol.config import ButtonsConfig, PatrolConfig
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
from agent.patrol.core.geofence import accuracy_m, is_evidence
from agent.patrol.early import EarlyPhotos
from agent.patrol.notices import Notices
from agent.patrol.persistence import engine_from, state_doc, without_position
from agent.patrol.reporter import Reporter, StillCamera
from agent.patrol.safety import SafetyGuard, work_context
from agent.patrol.unsent import Outlet, Unsent
from agent.patrol.views import Outcome, checkin_notice, gps_section, manual_answer, tasks_view
from firmware_bridge.aio import Spawn, spawn_task
from firmware_bridge.buttons import FeedbackKind
from firmware_bridge.types import ButtonPress, Fix, TagScan
from sync.envelope import TimeStamp
from sync.messages import Stored
from sync.outbox import Outbox
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

STATE_FILE = "patrol.json"
DRAIN_S = 30.0  # at shutdown, how long a batch in progress (a photo) may take to finish

Decide = Callable[[int, bool], list[Decision]]  # (now_ms, time_ok) -> engine decisions


class PatrolClock(Protocol):
    """The agent clock as the driver uses it (agent.clock.SystemClock)."""

    def stamp(self) -> TimeStamp: ...
    def on_fix(self, fix: Fix) -> None: ...
    def mono_ms(self) -> int: ...


class PatrolDriver:
    """The patrol device's driver; `async with` restores state and runs the input loops."""

    def __init__(
        self,
        *,
        outbox: Outbox,
        media: MediaStore,
        events: EventSink | None = None,
        clock: PatrolClock,
        state_dir: Path,
        staff_id: str | None,
        profile: Callable[[], ModeProfile],
        tasks: Mapping[str, Any] | None,
        fixes: AsyncIterator[Fix] | None = None,
        tags: AsyncIterator[TagScan] | None = None,
        presses: AsyncIterator[ButtonPress] | None = None,
        feedback: Callable[[FeedbackKind], None] | None = None,
        camera: StillCamera | None = None,
        settings: PatrolConfig | None = None,
        buttons: ButtonsConfig | None = None,
        params: CheckinParams | None = None,
        spawn: Spawn = spawn_task,
    ) -> None:
        self.reporter = Reporter(
            events=events or Events(outbox),
            media=media,
            stamp=clock.stamp,
            staff_id=staff_id,
            profile=profile,
            camera=camera,
            feedback=feedback,
        )
        self._outbox, self._media, self._clock = outbox, media, clock
        self._path = state_dir / STATE_FILE
        self._record = tasks
        self._inputs = (fixes, tags, presses)
        self._cfg = settings or PatrolConfig()
        self._buttons = buttons or ButtonsConfig()
        self._params = params or CheckinParams(
            reach_speed_mps=self._cfg.reach_speed_mps, k_hold=self._cfg.k_hold
        )
        self._spawn_loop = spawn
        self._engine = PatrolEngine(params=self._params)
        self._out = Outlet(outbox, self.reporter, retry_s=self._cfg.tick_s)
        self.notices = Notices()  # check-ins as they are stored (the companion page listens)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batches: set[asyncio.Task[list[Outcome]]] = set()
        self._latest: Fix | None = None  # newest fix of any kind (status)
        self._evidence: tuple[Fix, int] | None = None  # newest usable fix, mono ms received
        self._dirty = False  # engine state changed since the last save
        self._settled = True  # False while a batch is between its engine call and its save
        self._saved_at = 0
        self._saved_text: str | None = None  # what patrol.json holds, less the position
        self._closed = False
        self._early = EarlyPhotos(
            take=self._early_photo,
            mono_ms=clock.mono_ms,
            spawn=self._spawn,
            max_age_s=self._cfg.early_photo_max_age_s,
        )
        self.safety = SafetyGuard(
            reporter=self.reporter,
            mono_ms=clock.mono_ms,
            state_dir=state_dir,
            profile=profile,
            settings=self._cfg,
            context=lambda: work_context(self._engine, self._clock.stamp(), *self.current_fix()),
            here=self.current_fix,
            notices=self.notices,
        )

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> PatrolDriver:
        saved = await asyncio.to_thread(read_json, self._path, None)
        saved = saved if isinstance(saved, dict) else {}
        self._saved_text = without_position(saved) if saved else None
        self._engine = engine_from(saved, self._record, self._params)
        if await self._out.restore(self._outbox, saved, self._engine):
            self._dirty = True
        await self.safety.restore()
        if self._record is not None:
            # The stored tasks document wins over the snapshot's copy; replacing keeps progress.
            await self._run(functools.partial(self._replace, self._record))
        fixes, tags, presses = self._inputs
        # The long-running loops go to the agent's supervisor (restarted if one crashes).
        loops: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("patrol-tick", self._tick_loop),
            ("media-reaper", self._reap_loop),
            ("patrol-safety", self.safety.run),
        ]
        if fixes is not None:
            loops.append(("patrol-fixes", functools.partial(self._fix_loop, fixes)))
        if tags is not None:
            loops.append(("patrol-tags", functools.partial(self._tag_loop, tags)))
        if presses is not None:
            loops.append(("patrol-presses", functools.partial(self._press_loop, presses)))
        for name, factory in loops:
            self._tasks.add(self._spawn_loop(name, factory))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._batches:
            # Let a check-in that is being stored finish (its photo may take a moment).
            _, late = await asyncio.wait(list(self._batches), timeout=DRAIN_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        async with self._lock:
            if self._settled and self._dirty:
                await self._save()
        await self.safety.save()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        # Short jobs (an early photo): owned here, cancelled at exit; a crash is logged.
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._job_done)
        return task

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("patrol job %s failed", task.get_name(), exc_info=task.exception())

    # ----- inputs ----------------------------------------------------------------------------
    async def apply_tasks(self, record: Mapping[str, Any]) -> None:
        """A newly applied tasks document replaces the task set; returns once it has.

        The agent acks the document only after this returns, so an `applied` ack means the
        check-ins, the local API and the page follow this set.
        """
        if self._closed:
            return  # stored by the agent already; the next start applies it
        await self._run(functools.partial(self._replace, record))

    def _replace(self, record: Mapping[str, Any], now_ms: int, time_ok: bool) -> list[Decision]:
        try:
            taskset = parse_tasks_body(record.get("body"))
        except ConfigError as exc:
            log.error("tasks ver %s not usable: %s", record.get("ver"), exc)
            return []
        self._record = record
        log.info("patrol task set ver %s: %d task(s)", record.get("ver"), len(taskset.tasks))
        return self._engine.replace_tasks(taskset, now_ms, time_ok)

    async def _fix_loop(self, fixes: AsyncIterator[Fix]) -> None:
        async for fix in fixes:
            self._clock.on_fix(fix)
            self._latest = fix
            if is_evidence(fix):
                self._evidence = (fix, self._clock.mono_ms())
            await self._run(functools.partial(self._engine.on_fix, fix))
            good = self._engine.accepted  # past the outlier gate: no multipath jump
            if good is not None:
                self.safety.on_fix(good, accuracy_m(good, self._params))
            if self._cfg.early_photo and self.reporter.camera is not None:
                every = self.reporter.profile().checkin_photo
                now = self._clock.stamp()
                runs = self._engine.dwelling(now.ts, now.time_ok)
                self._early.want({(t, cp.id) for t, cp in runs if cp.photo or every})

    async def _early_photo(self) -> list[dict[str, Any]]:
        fix, acc = self.current_fix()
        return await self.reporter.photos(fix, acc)

    async def _tag_loop(self, tags: AsyncIterator[TagScan]) -> None:
        async for scan in tags:
            self.safety.touch()
            fix, _ = self.current_fix()
            await self._run(functools.partial(self._engine.on_tag, scan.uid, fix))

    async def _press_loop(self, presses: AsyncIterator[ButtonPress]) -> None:
        b = self._buttons
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "sos": functools.partial(self.sos, note="SOS button"),
            "checkin": self.manual_checkin,
            "incident": functools.partial(
                self.incident,
                category=b.incident_category,
                level=b.incident_level,
                note="incident button",
            ),
        }
        async for press in presses:
            action = actions.get(press.button)
            if press.button == "checkin" and self.safety.asking:
                # While the device asks "are you all right?", the check-in button answers.
                action = functools.partial(self.safety.answer, "button")
            self.safety.touch()
            if action is None:
                log.warning("press of unknown button %r ignored", press.button)
                continue
            # Each press in its own task: an SOS must not wait behind a check-in's photo.
            self._spawn(self._guard(action(), press.button), f"press:{press.button}")

    async def _guard(self, op: Awaitable[Any], button: str) -> None:
        try:
            await op
        except StoreError as exc:
            self.reporter.error(f"{button} button: not stored: {exc}")
            self.reporter.signal("error")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.tick_s)
            # Also without decisions: a disk that has room again drains the unsent queue.
            retry = self._out.unsent.due(self._clock.mono_ms())
            await self._run(self._engine.tick, dirty=False, retry=retry)
            due = self._clock.mono_ms() - self._saved_at >= self._cfg.save_interval_s * 1000
            if self._dirty and due:
                # Dwell runs, so a restart resumes a run within gap_s; not the gate alone.
                async with self._lock:
                    await self._save(periodic=True)

    def _reap_loop(self) -> Coroutine[Any, Any, None]:
        # Photos named by events still waiting (unsent, early) are spared.
        return self._media.run_reaper(
            self._cfg.reap_interval_s,
            keep=lambda: self._out.unsent.media_ids() | self._early.media_ids(),
        )

    # ----- batches: engine call -> events -> save ----------------------------------------------
    async def drain(self) -> None:
        """Until every batch started so far has stored its events (tests, bench)."""
        while self._batches:
            await asyncio.gather(*list(self._batches), return_exceptions=True)

    async def _run(
        self, decide: Decide, *, dirty: bool = True, retry: bool = False
    ) -> list[Outcome]:
        return await asyncio.shield(self._batch_task(decide, dirty, retry))

    def _batch_task(
        self, decide: Decide, dirty: bool, retry: bool = False
    ) -> asyncio.Task[list[Outcome]]:
        # Its own task (the lock keeps batches in order): a cancelled caller does not cut it.
        task = asyncio.create_task(self._batch(decide, dirty, retry), name="patrol-batch")
        self._batches.add(task)
        task.add_done_callback(self._batch_done)
        return task

    def _batch_done(self, task: asyncio.Task[list[Outcome]]) -> None:
        self._batches.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("patrol batch failed", exc_info=task.exception())

    async def _batch(self, decide: Decide, dirty: bool, retry: bool) -> list[Outcome]:
        async with self._lock:
            stamp = self._clock.stamp()
            decisions = decide(stamp.ts, stamp.time_ok)
            self._dirty = self._dirty or dirty
            if not decisions and not (retry and len(self._out.unsent)):
                return []
            self._settled = False
            # What waits goes first: events and the chain in the order decided.
            flushed = await self._out.flush(self._clock.mono_ms())
            out = [await self._emit(d) for d in decisions]
            if decisions or flushed:
                self._dirty = True  # a save that fails now is retried by the tick and at exit
                await self._save()
            self._settled = True
            return out

    async def _emit(self, d: Decision) -> Outcome:
        rep = self.reporter
        if isinstance(d, CheckIn | Progress):
            if isinstance(d, CheckIn):
                stored = await self._checkin(d)
            else:
                log.info("patrol %s %s (%d/%d)", d.task_id, d.event, d.done, d.total)
                stored = await self._out.deliver(Unsent("patrol", d.to_body()))
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
        rep = self.reporter
        photos: list[dict[str, Any]] = []
        if d.needs_photo or rep.profile().checkin_photo:
            if d.method == "gps":
                # Taken while the dwell ran (agent/patrol/early.py): no capture on this path.
                photos = await self._early.claim((d.task_id, d.checkpoint_id))
            photos = photos or await rep.photos(d.fix, d.acc_m)
        # Photos now (they show the checkpoint), `prev` only when it is stored.
        stored = await self._out.deliver(Unsent("checkin", {**d.to_body(), "photos": photos}))
        if stored is None:
            return None
        deciding = d.deciding or d.fix
        if d.method == "gps" and deciding is not None and deciding.mono_ms is not None:
            self.reporter.counts.fix_to_outbox_ms = self._clock.mono_ms() - deciding.mono_ms
        log.info(
            "checked in at %s/%s by %s (seq %d)", d.task_id, d.checkpoint_id, d.method, stored.seq
        )
        rep.signal("ok")
        self.notices.publish(checkin_notice(d, stored, photos, self._engine.tasks))
        await rep.send_media(photos, stored)
        return stored

    async def _save(self, *, periodic: bool = False) -> None:
        """Write patrol.json. A periodic save is skipped when only the last fix's position
        moved (`without_position`): an idle device would rewrite it every save interval.
        The state stays dirty, so the next event's save or the one at exit writes it."""
        rec = self._record
        tasks = None if rec is None else {"id": rec.get("id"), "ver": rec.get("ver")}
        out = self._out
        snap = self._engine.snapshot()
        doc = state_doc(snap, out.chain, tasks, out.unsent.to_json(), out.last_seq)
        text = without_position(doc)
        if periodic and text == self._saved_text:
            self._saved_at = self._clock.mono_ms()
            return
        try:
            await asyncio.to_thread(write_json, self._path, doc)
        except OSError as exc:
            # The journal keeps the check-ins; a restart repairs the head from it.
            self.reporter.error(f"patrol state not saved: {exc}")
            return
        self._saved_text = text
        self._dirty = False
        self._saved_at = self._clock.mono_ms()
        await out.release(self._outbox)

    # ----- actions (buttons, local API, cmd) ---------------------------------------------------
    async def sos(self, *, note: str = "") -> Stored:
        """Store an SOS alarm (priority 0) with the current position; StoreError if it cannot."""
        fix, acc = self.current_fix()
        self.safety.touch()
        self.safety.sos_raised()
        return await self.reporter.sos(fix, acc, note, self.safety.trail())

    async def incident(
        self,
        *,
        category: str,
        level: int,
        note: str = "",
        photo: bool = True,
        images: Sequence[bytes] = (),
    ) -> Stored:
        """Store an incident with the current position, (by default) a photo, and `images`.

        `images` are JPEGs taken elsewhere (the companion page's phone camera); they are kept
        in the media store and named by the incident like the device's own photo.
        """
        fix, acc = self.current_fix()
        self.safety.touch()
        return await self.reporter.incident(
            fix, acc, category=category, level=level, note=note, photo=photo, images=images
        )

    async def manual_checkin(self) -> dict[str, Any]:
        """The check-in button; the answer is agent.patrol.views.manual_answer's."""
        self.safety.touch()
        fix, _ = self.current_fix()
        return manual_answer(await self._run(functools.partial(self._engine.on_manual, fix)))

    async def snapshot(self, args: Mapping[str, Any]) -> None:
        """`cmd snapshot`: a photo now, named by a notice of type snapshot."""
        if args.get("camera_id"):
            raise DeviceError("a patrol device has one camera: leave out camera_id")
        fix, acc = self.current_fix()
        errors = self.reporter.counts.errors
        stored = await self.reporter.snapshot(fix, acc)
        if stored is None or self.reporter.counts.errors > errors:
            # The notice says so too; the ack must not say `applied` for a photo never taken.
            raise DeviceError(f"snapshot failed: {self.reporter.counts.last_error}")

    def current_fix(self) -> tuple[Fix | None, float | None]:
        """The newest usable fix if younger than fix_max_age_s, with its accuracy; else None."""
        if self._evidence is None:
            return None, None
        fix, seen = self._evidence
        if self._clock.mono_ms() - seen > self._cfg.fix_max_age_s * 1000:
            return None, None
        return fix, accuracy_m(fix, self._params)

    # ----- views -----------------------------------------------------------------------------
    def gps_status(self) -> dict[str, Any]:
        """The §8 status `gps` section."""
        return gps_section(*self.current_fix(), self._latest)

    def status(self) -> dict[str, Any]:
        """The role's status section (and GET /status): progress, chain, counters, camera."""
        rec, cam = self._record, self.reporter.camera
        return {
            "patrol": {
                "tasks_ver": None if rec is None else rec.get("ver"),
                "tasks": [asdict(s) for s in self._engine.status()],
                "chain": self._out.chain.to_json(),
                "unsent": len(self._out.unsent),
                "early_photos": dict(self._early.stats),
                "safety": dict(self.safety.stats),
                **asdict(self.reporter.counts),
                "engine": asdict(self._engine.counters),
                "gps": self.gps_status(),
                "camera": cam.status() if cam is not None else None,
            }
        }

    def progress(self) -> dict[str, int] | None:
        """Checkpoints done, missed and in all, summed over the task set; None without one."""
        if self._record is None:
            return None
        tasks = self._engine.status()
        return {
            "done": sum(t.done for t in tasks),
            "missed": sum(t.missed for t in tasks),
            "total": sum(t.total for t in tasks),
        }

    def tasks_view(self) -> dict[str, Any]:
        """GET /tasks: the task set with each checkpoint's state (open, checked, missed)."""
        rec = self._record
        return tasks_view(self._engine, None if rec is None else rec.get("ver"))
