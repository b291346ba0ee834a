"""One camera's async pipeline: capture with reopen/backoff, analysis off the loop, events out."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import cv2
import numpy as np

from agent.camera.sources import FrameSource
from agent.errors import ConfigError, DeviceError
from agent.vision import lifecycle, offline, rules
from agent.vision.analysis import Frame, FrameProcessor, zones_of
from agent.vision.config import CameraConfig, RuleThresholds
from agent.vision.detectors import Detector
from agent.vision.publish import DetectionWriter, WallRef
from agent.vision.snapshot import render
from firmware_bridge.aio import Backoff, Spawn, spawn_task

log = logging.getLogger(__name__)
T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


class CameraPipeline:
    """Async context manager running one camera: a capture task and an analysis task."""

    def __init__(
        self,
        cam: CameraConfig,
        publisher: DetectionWriter,
        *,
        source_factory: Callable[[CameraConfig], FrameSource],
        detector_factory: Callable[[CameraConfig], Detector] | None,
        mode: Callable[[], str],
        clock: Callable[[], float],
        now_ms: Callable[[], int],
        sleep: Sleep,
        rng: Callable[[], float],
        track_prefix: str,
        spawn: Spawn = spawn_task,
    ) -> None:
        self.cam = cam
        self._spawn = spawn
        self._publisher = publisher
        self._source_factory = source_factory
        self._detector_factory = detector_factory
        self._mode = mode
        self._clock = clock
        self._now_ms = now_ms
        self._sleep = sleep
        self._rng = rng
        self._zones = zones_of(cam)
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=cam.queue_size)
        self._cap_exec = self._new_executor("capture")
        self._proc_exec = self._new_executor("analysis")
        self._tasks: list[asyncio.Task[None]] = []
        self._memory = rules.RuleMemory()
        self._life = lifecycle.LifecycleState(prefix=track_prefix)
        self._thresholds: dict[str, RuleThresholds] = {}
        self._latest: Frame | None = None
        self._first_frame = asyncio.Event()  # set once a frame was analysed (snapshots wait)
        self._processor: FrameProcessor | None = None
        self._detector: Detector | None = None
        self._state = "starting"
        self._last_error: str | None = None
        self._frames = 0
        self._captured = 0
        self._dropped = 0
        self._reopenings = 0
        # A reconnect is a reopen that delivered a frame again; the gap runs frame to frame.
        self._reconnects = 0
        self._last_gap_s: float | None = None
        self._lost_at: float | None = None
        self._last_frame_clock = 0.0
        self._done_times: collections.deque[float] = collections.deque(maxlen=20)
        self._offline: lifecycle.Transition | None = None  # the open camera_offline start
        self._offline_wall = WallRef(0.0, 0)
        self._started_clock = 0.0
        self._last_t = float("-inf")

    def _new_executor(self, role: str) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vision-{self.cam.id}-{role}")

    async def __aenter__(self) -> CameraPipeline:
        self._started_clock = self._clock()
        for name, loop in (("capture", self._capture), ("analysis", self._analyse)):
            task = self._spawn(f"vision:{self.cam.id}:{name}", loop)
            task.add_done_callback(self._task_done)
            self._tasks.append(task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._end_all()
        self._cap_exec.shutdown(wait=False, cancel_futures=True)
        self._proc_exec.shutdown(wait=False, cancel_futures=True)
        if self._state != "failed":
            self._state = "stopped"

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # Its supervisor gave the loop up (repeated crashes): this camera fails alone.
            self._state = "failed"
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.error("camera %s task %s crashed", self.cam.id, task.get_name(), exc_info=exc)
            for other in self._tasks:
                if other is not task:
                    other.cancel()

    def status(self) -> dict[str, Any]:
        """state (starting/running/reopening/failed/stopped), fps, counters, last_error."""
        times = self._done_times
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        fps = (len(times) - 1) / span if span > 0 else 0.0
        return {
            "state": self._state,
            "fps": round(fps, 2),
            "frames": self._frames,
            "captured": self._captured,
            "dropped": self._dropped,
            "reopenings": self._reopenings,
            "reconnects": self._reconnects,
            "last_gap_s": round(self._last_gap_s, 3) if self._last_gap_s is not None else None,
            "detector_runs": self._processor.detector_runs if self._processor else 0,
            "detector": getattr(self._detector, "name", None),
            "degraded": getattr(self._detector, "degraded", None),
            "open_events": len(self._life.open) + (self._offline is not None),
            "last_error": self._last_error,
        }

    def latest_image(self) -> np.ndarray | None:
        """The last analysed frame (for snapshots of forwarded camera alarms)."""
        return self._latest.image if self._latest is not None else None

    async def first_frame(self) -> None:
        """Until a frame has been analysed (at once if one was); callers bound the wait."""
        await self._first_frame.wait()

    # --- capture -------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], T]) -> T:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the read completes, and then the pipeline would never stop.
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.cam.stall_s):
            return await loop.run_in_executor(self._cap_exec, fn)

    def _backoff(self, attempt: int) -> float:
        b = self.cam.backoff
        # Jitter keeps cameras from reconnecting in step.
        return Backoff(b.initial_s, b.max_s).delay(attempt, _Uniform(self._rng))

    async def _capture(self) -> None:
        attempt = 0
        while True:
            source: FrameSource | None = None
            stalled = delivered = False
            try:
                source = self._source_factory(self.cam)
                await self._call(source.open)
                self._state = "running"
                log.info("camera %s opened %s", self.cam.id, self.cam.source)
                async for _ in self._frames_of(source):
                    attempt = 0
                    delivered = True
                raise DeviceError("stream ended")
            except (ConfigError, ImportError) as exc:
                self._state = "failed"
                self._last_error = str(exc)
                log.error("camera %s cannot run: %s", self.cam.id, exc)
                return
            except (DeviceError, TimeoutError) as exc:
                stalled = isinstance(exc, TimeoutError)
                reason = f"no frame for {self.cam.stall_s:g} s" if stalled else str(exc)
                self._state = "reopening"
                self._last_error = reason
                if self._lost_at is None and self._captured:
                    self._lost_at = self._last_frame_clock
                self._reopenings += 1
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("camera %s: %s; reopening in %.1f s", self.cam.id, reason, delay)
                if not delivered and self._silent_for() >= self.cam.stall_s:
                    # Reopening did not bring it back, and it has been silent for stall_s: the
                    # camera is gone (a brief drop is only a gap in last_gap_s).
                    await self._went_offline(reason)
            finally:
                if source is not None:
                    self._release(source, stalled)
            await self._sleep(delay)

    def _release(self, source: FrameSource, stalled: bool) -> None:
        if stalled:
            # The stuck read still owns the old thread: close after it returns, use a new one.
            old, self._cap_exec = self._cap_exec, self._new_executor("capture")
            old.submit(source.close)
            old.shutdown(wait=False)
        else:
            self._cap_exec.submit(source.close)

    async def _frames_of(self, source: FrameSource) -> AsyncIterator[None]:
        """Read paced frames into the queue; yields after each one."""
        period = 1.0 / self.cam.fps
        base = max(self._clock(), self._last_t + period)
        wall_base = self._now_ms()
        due = self._clock()
        n = 0
        while True:
            if source.live:
                while self._clock() < due:  # drain what the camera sends between wanted frames
                    if not await self._call(source.grab):
                        raise DeviceError("stream dropped")
                image = await self._call(source.read)
                t = self._clock()
            else:
                delay = due - self._clock()
                if delay > 0:
                    await self._sleep(delay)
                image = await self._call(source.read)
                t = base + n * period  # a recording's own timeline
            if image is None:
                return
            due = max(due + period, self._clock()) if source.live else due + period
            self._captured += 1
            self._frame_arrived()
            if self._offline is not None:
                await self._back_online()
            # A recording's frames get wall times on its own timeline, mapped at open.
            wall = self._now_ms() if source.live else wall_base + round((t - base) * 1000)
            frame = Frame(image, t, wall, self._captured, first=n == 0)
            n += 1
            self._last_t = t
            if source.live:
                if self._queue.full():
                    self._queue.get_nowait()  # drop the oldest: recent frames matter most
                    self._dropped += 1
                self._queue.put_nowait(frame)
            else:
                # A recording is not real time: wait for the analysis instead of dropping.
                await self._queue.put(frame)
            yield None

    def _silent_for(self) -> float:
        """Seconds since the last frame (or since the pipeline started, before any frame)."""
        since = self._last_frame_clock if self._captured else self._started_clock
        return self._clock() - since

    async def _went_offline(self, reason: str) -> None:
        """`camera_offline` start, dated at the last frame (or now, if it never gave one)."""
        if self._offline is not None:
            return
        now = self._clock()
        since = self._last_frame_clock if self._captured else now
        seq = self._life.next_seq
        self._life = dataclasses.replace(self._life, next_seq=seq + 1)
        self._offline = tr = offline.went_offline(f"{self._life.prefix}-{seq}", since, now, reason)
        self._offline_wall = WallRef(now, self._now_ms())
        log.warning("camera %s offline: %s", self.cam.id, reason)
        await self._publish(tr, self._offline_wall, self._rules_for(self._mode()), None)

    async def _back_online(self) -> None:
        assert self._offline is not None
        now = self._clock()
        tr, self._offline = offline.back_online(self._offline, now), None
        log.info("camera %s: offline event ended", self.cam.id)
        # The start's wall reference: started_ms stays the same in both bodies.
        await self._publish(tr, self._offline_wall, self._rules_for(self._mode()), None)

    def _frame_arrived(self) -> None:
        now = self._clock()
        self._last_frame_clock = now
        if self._lost_at is not None:
            self._reconnects += 1
            self._last_gap_s = now - self._lost_at
            self._lost_at = None

    # --- analysis ------------------------------------------------------------------------

    def _rules_for(self, mode: str) -> RuleThresholds:
        th = self._thresholds.get(mode)
        if th is None:
            th = self._thresholds[mode] = self.cam.thresholds_for(mode)
        return th

    def _make_processor(self) -> FrameProcessor:
        detector = self._detector_factory(self.cam) if self._detector_factory else None
        self._detector = detector
        return FrameProcessor(self.cam, detector)

    async def _analyse(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._processor = await loop.run_in_executor(self._proc_exec, self._make_processor)
        except (ConfigError, DeviceError, ImportError, OSError) as exc:
            # A detector that cannot load fails this camera only; the others keep running.
            self._state = "failed"
            self._last_error = str(exc)
            log.error("camera %s detector unusable: %s", self.cam.id, exc)
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            return
        processor = self._processor
        while True:
            frame = await self._queue.get()
            th = self._rules_for(self._mode())
            params = th.params(self.cam.tamper)
            try:
                analysis = await loop.run_in_executor(
                    self._proc_exec, processor.process, frame, params
                )
            except (cv2.error, DeviceError) as exc:
                self._last_error = f"analysis: {exc}"
                log.error("camera %s frame %d not analysed: %s", self.cam.id, frame.seq, exc)
                continue
            self._latest = frame
            self._first_frame.set()
            self._memory, conditions = rules.evaluate(
                analysis.scene, self._zones, params, self._memory
            )
            self._life, transitions = lifecycle.step(self._life, conditions, frame.t, th.timing())
            wall = WallRef(frame.t, frame.wall_ms)
            for tr in transitions:
                await self._publish(tr, wall, th, frame.image if tr.state == "start" else None)
            # Counted once its events are out, so "frames" means fully handled.
            self._frames += 1
            self._done_times.append(self._clock())

    async def _publish(
        self,
        tr: lifecycle.Transition,
        wall: WallRef,
        th: RuleThresholds,
        image: np.ndarray | None,
    ) -> None:
        snapshot = None
        if image is not None:
            snap = self.cam.snapshot
            zones = [
                (z.name, z.polygon) for z in self._zones if snap.draw_zones and z.name == tr.zone
            ]

            def snapshot() -> bytes:
                return render(image, tr.boxes, zones, max_side=snap.max_side, quality=snap.quality)

        await self._publisher.publish(
            self.cam.id, "edge", tr, wall, priority=th.priority(tr.rule), snapshot=snapshot
        )

    async def _end_all(self) -> None:
        """End every open event when the camera stops, so central never sees one hang."""
        if self._offline is not None:
            await self._back_online()  # ended_ms: when the gateway stopped watching
        if not self._life.open:
            return
        last = self._latest
        wall = WallRef(last.t, last.wall_ms) if last is not None else WallRef(0.0, self._now_ms())
        t = last.t if last is not None else 0.0
        self._life, transitions = lifecycle.close_all(self._life, t)
        th = self._rules_for(self._mode())
        for tr in transitions:
            await self._publish(tr, wall, th, None)


class _Uniform:
    """random.Random's `uniform` over the pipeline's injected rng (a [0, 1) callable)."""

    def __init__(self, rng: Callable[[], float]) -> None:
        self._rng = rng

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self._rng()
