"""PatrolDriver: fixes, tag scans and presses in; check-ins, progress, incidents and SOS out.

The pure PatrolEngine decides; the driver stores what it decided in the outbox (photos first,
then the event with its hash-chain `prev`, then the photo chunks), gives the person feedback,
and keeps the engine snapshot, chain head and the events the outbox refused (kept in order
until it takes them: agent/patrol/unsent.py) in state_dir/patrol.json (agent/patrol/persistence.py).
Every engine call and the events it produces run as one batch under one lock, in a task of
their own (agent/patrol/batches.py), so a caller that is cancelled never leaves a batch half
stored (docs/patrol.md).
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
from agent.errors import DeviceError, StoreError
from agent.events import Events, EventSink
from agent.media import MediaStore
from agent.patrol.batches import Batches
from agent.patrol.config import ButtonsConfig, PatrolConfig
from agent.patrol.core import CheckinParams
from agent.patrol.core.geofence import accuracy_m, is_evidence
from agent.patrol.early import EarlyPhotos
from agent.patrol.notices import Notices
from agent.patrol.reporter import Reporter, StillCamera
from agent.patrol.safety import SafetyGuard, work_context
from agent.patrol.views import gps_section, manual_answer, tasks_view
from firmware_bridge.aio import Spawn, spawn_task
from firmware_bridge.buttons import FeedbackKind
from firmware_bridge.types import ButtonPress, Fix, TagScan
from sync.envelope import TimeStamp
from sync.messages import Stored
from sync.outbox import Outbox

log = logging.getLogger(__name__)

DRAIN_S = 30.0  # at shutdown, how long a batch in progress (a photo) may take to finish


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
        self._clock, self._media, self._inputs = clock, media, (fixes, tags, presses)
        # The defaults unvalidated: they are the models' own, and validating would build the
        # models' validators in a device that has nothing to validate (issue 22).
        self._cfg = cfg = settings or PatrolConfig.model_construct()
        self._buttons = buttons or ButtonsConfig.model_construct()
        self._params = params or CheckinParams(
            reach_speed_mps=cfg.reach_speed_mps, k_hold=cfg.k_hold
        )
        self._spawn_loop = spawn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._latest: Fix | None = None  # newest fix of any kind (status)
        self._evidence: tuple[Fix, int] | None = None  # newest usable fix, mono ms received
        self._closed = False
        self.notices = Notices()  # check-ins as they are stored (the companion page listens)
        self.reporter = Reporter(
            events=events or Events(outbox),
            media=media,
            stamp=clock.stamp,
            staff_id=staff_id,
            profile=profile,
            camera=camera,
            feedback=feedback,
        )
        self._early = EarlyPhotos(
            take=self._early_photo,
            mono_ms=clock.mono_ms,
            spawn=self._spawn,
            max_age_s=cfg.early_photo_max_age_s,
        )
        self._book = self._batches(outbox, state_dir, tasks)
        self.safety = self._safety_guard(state_dir, profile)

    def _batches(self, outbox: Outbox, state_dir: Path, tasks: Mapping[str, Any] | None) -> Batches:
        """The batch runner (engine, outlet, patrol.json) over `tasks`, the stored task set."""
        clock = self._clock
        return Batches(
            outbox=outbox,
            reporter=self.reporter,
            early=self._early,
            notices=self.notices,
            state_dir=state_dir,
            stamp=clock.stamp,
            mono_ms=clock.mono_ms,
            params=self._params,
            record=tasks,
            retry_s=self._cfg.tick_s,
        )

    def _safety_guard(self, state_dir: Path, profile: Callable[[], ModeProfile]) -> SafetyGuard:
        """The worker's safety checks, told the work context and position by this driver."""
        return SafetyGuard(
            reporter=self.reporter,
            mono_ms=self._clock.mono_ms,
            state_dir=state_dir,
            profile=profile,
            settings=self._cfg,
            context=lambda: work_context(
                self._book.engine, self._clock.stamp(), *self.current_fix()
            ),
            here=self.current_fix,
            notices=self.notices,
        )

    # ----- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> PatrolDriver:
        book = self._book
        await book.restore()
        await self.safety.restore()
        if book.record is not None:
            # The stored tasks document wins over the snapshot's copy; replacing keeps progress.
            await book.run(functools.partial(book.replace, book.record))
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
        # Let a check-in that is being stored finish (its photo may take a moment).
        await self._book.close(DRAIN_S)
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

    async def drain(self) -> None:
        """Until every batch started so far has stored its events (tests, bench)."""
        await self._book.drain()

    # ----- inputs ----------------------------------------------------------------------------
    async def apply_tasks(self, record: Mapping[str, Any]) -> None:
        """A newly applied tasks document replaces the task set; returns once it has.

        The agent acks the document only after this returns, so an `applied` ack means the
        check-ins, the local API and the page follow this set.
        """
        if self._closed:
            return  # stored by the agent already; the next start applies it
        await self._book.run(functools.partial(self._book.replace, record))

    async def _fix_loop(self, fixes: AsyncIterator[Fix]) -> None:
        book = self._book
        async for fix in fixes:
            self._clock.on_fix(fix)
            self._latest = fix
            if is_evidence(fix):
                self._evidence = (fix, self._clock.mono_ms())
            await book.run(functools.partial(book.engine.on_fix, fix))
            good = book.engine.accepted  # past the outlier gate: no multipath jump
            if good is not None:
                self.safety.on_fix(good, accuracy_m(good, self._params))
            if self._cfg.early_photo and self.reporter.camera is not None:
                every = self.reporter.profile().checkin_photo
                now = self._clock.stamp()
                runs = book.engine.dwelling(now.ts, now.time_ok)
                self._early.want({(t, cp.id) for t, cp in runs if cp.photo or every})

    async def _early_photo(self) -> list[dict[str, Any]]:
        fix, acc = self.current_fix()
        return await self.reporter.photos(fix, acc)

    async def _tag_loop(self, tags: AsyncIterator[TagScan]) -> None:
        async for scan in tags:
            self.safety.touch()
            fix, _ = self.current_fix()
            await self._book.run(functools.partial(self._book.engine.on_tag, scan.uid, fix))

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
        book = self._book
        while True:
            await asyncio.sleep(self._cfg.tick_s)
            # Also without decisions: a disk that has room again drains the unsent queue.
            retry = book.out.unsent.due(self._clock.mono_ms())
            await book.run(book.engine.tick, dirty=False, retry=retry)
            await book.save_due(self._cfg.save_interval_s)

    def _reap_loop(self) -> Coroutine[Any, Any, None]:
        # Photos named by events still waiting (unsent, early) are spared.
        return self._media.run_reaper(
            self._cfg.reap_interval_s,
            keep=lambda: self._book.out.unsent.media_ids() | self._early.media_ids(),
        )

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
        book = self._book
        return manual_answer(await book.run(functools.partial(book.engine.on_manual, fix)))

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
        book, cam = self._book, self.reporter.camera
        rec = book.record
        return {
            "patrol": {
                "tasks_ver": None if rec is None else rec.get("ver"),
                "tasks": [asdict(s) for s in book.engine.status()],
                "chain": book.out.chain.to_json(),
                "unsent": len(book.out.unsent),
                "early_photos": dict(self._early.stats),
                "safety": dict(self.safety.stats),
                **asdict(self.reporter.counts),
                "engine": asdict(book.engine.counters),
                "gps": self.gps_status(),
                "camera": cam.status() if cam is not None else None,
            }
        }

    def progress(self) -> dict[str, int] | None:
        """Checkpoints done, missed and in all, summed over the task set; None without one."""
        if self._book.record is None:
            return None
        tasks = self._book.engine.status()
        return {
            "done": sum(t.done for t in tasks),
            "missed": sum(t.missed for t in tasks),
            "total": sum(t.total for t in tasks),
        }

    def tasks_view(self) -> dict[str, Any]:
        """GET /tasks: the task set with each checkpoint's state (open, checked, missed)."""
        rec = self._book.record
        return tasks_view(self._book.engine, None if rec is None else rec.get("ver"))
