"""Forwarded camera alarms: pushed or pulled, they become detection events with origin "camera".

An alarm is active from its first "active" notice until an "inactive" one, or until hold_s passes
without a repeat (cameras repeat while an alarm lasts, and some never send "inactive"). A start
event's photo is the camera's own picture when it sent one, else the gateway's latest frame.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from agent.vision import lifecycle
from agent.vision.alarm_parse import CameraAlarm
from agent.vision.config import ForwardingConfig
from agent.vision.publish import DetectionWriter, WallRef
from agent.vision.rules import Condition, Key
from agent.vision.snapshot import render
from firmware_bridge.aio import Spawn, spawn_task
from sync.messages import Priority

log = logging.getLogger(__name__)

SWEEP_S = 1.0


@dataclass(frozen=True, slots=True)
class _Seen:
    first: float
    last: float
    alarm: CameraAlarm


class AlarmForwarder:
    """Async context manager: turns CameraAlarms into events and ends silent ones on a timer."""

    def __init__(
        self,
        cfg: ForwardingConfig,
        publisher: DetectionWriter,
        *,
        mode: Callable[[], str],
        clock: Callable[[], float],
        now_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]],
        latest_image: Callable[[str], np.ndarray | None],
        track_prefix: str,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._cfg = cfg
        self._publisher = publisher
        self._mode = mode
        self._clock = clock
        self._now_ms = now_ms
        self._sleep = sleep
        self._latest_image = latest_image
        self._prefix = track_prefix
        self._timing = lifecycle.Timing(cfg.update_min_s, 0.0, cfg.cooldown_s)
        self._seen: dict[str, dict[Key, _Seen]] = {}
        self._life: dict[str, lifecycle.LifecycleState] = {}
        # One camera's pushes and the sweeper must not interleave their transitions.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._spawn = spawn

    async def __aenter__(self) -> AlarmForwarder:
        self._task = self._spawn("vision:alarms:sweeper", self._sweeper)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        async with self._lock:
            t = self._clock()
            wall = WallRef(t, self._now_ms())
            for camera_id, state in list(self._life.items()):
                self._life[camera_id], transitions = lifecycle.close_all(state, t)
                await self._publish(camera_id, transitions, wall)

    def open_events(self) -> int:
        """How many forwarded alarms are open now."""
        return sum(len(s.open) for s in self._life.values())

    async def handle(self, alarm: CameraAlarm) -> list[str]:
        """Apply one push; returns the states of the events it caused (may be none)."""
        async with self._lock:
            t = self._clock()
            seen = self._seen.setdefault(alarm.camera_id, {})
            key: Key = (alarm.rule, alarm.zone)
            before = seen.get(key)
            if alarm.active:
                seen[key] = _Seen(before.first if before else t, t, alarm)
                return await self._step(alarm.camera_id, t)
            if before is None:
                return []  # "inactive" for nothing open: heartbeats of idle cameras
            # Seen until this notice, then gone: the end is stamped with the notice's time.
            seen[key] = _Seen(before.first, t, before.alarm)
            states = await self._step(alarm.camera_id, t)
            seen.pop(key, None)
            return states + await self._step(alarm.camera_id, t)

    async def sweep(self) -> None:
        """Expire alarms not repeated within hold_s and end their events."""
        async with self._lock:
            t = self._clock()
            for camera_id in list(self._seen):
                await self._step(camera_id, t)

    async def _sweeper(self) -> None:
        while True:
            await self._sleep(SWEEP_S)
            await self.sweep()

    async def _step(self, camera_id: str, t: float) -> list[str]:
        seen = self._seen.get(camera_id, {})
        for key in [k for k, s in seen.items() if t - s.last > self._hold(s.alarm)]:
            del seen[key]
        conditions = [
            Condition(
                s.alarm.rule,
                s.alarm.zone,
                s.alarm.count,
                s.alarm.score,
                s.alarm.boxes,
                s.first,
                seen=s.last,
            )
            for s in seen.values()
        ]
        state = self._life.get(camera_id) or lifecycle.LifecycleState(
            prefix=f"{camera_id}.{self._prefix}"
        )
        state, transitions = lifecycle.step(state, conditions, t, self._timing)
        self._life[camera_id] = state
        if not seen and not state.open and not state.quiet_until:
            self._seen.pop(camera_id, None)
            self._life.pop(camera_id, None)
        pictures = {k: s.alarm.picture for k, s in seen.items() if s.alarm.picture is not None}
        await self._publish(camera_id, transitions, WallRef(t, self._now_ms()), pictures)
        for key in pictures:
            # Only a start shows the picture: let it go once the event has started.
            if key in state.open:
                seen[key] = replace(seen[key], alarm=replace(seen[key].alarm, picture=None))
        return [tr.state for tr in transitions]

    def _hold(self, alarm: CameraAlarm) -> float:
        return alarm.hold_s if alarm.hold_s is not None else self._cfg.hold_s

    async def _publish(
        self,
        camera_id: str,
        transitions: tuple[lifecycle.Transition, ...],
        wall: WallRef,
        pictures: Mapping[Key, bytes] | None = None,
    ) -> None:
        mode = self._mode()
        urgent = {t for name, types in self._cfg.urgent.items() if name == mode for t in types}
        for tr in transitions:
            snapshot = None
            if tr.state == "start":
                picture = (pictures or {}).get((tr.rule, tr.zone))
                image = self._latest_image(camera_id) if picture is None else None
                if picture is not None:
                    snapshot = _given(picture)
                elif image is not None:
                    snapshot = _snapshot(image, tr)
            await self._publisher.publish(
                camera_id,
                "camera",
                tr,
                wall,
                priority=Priority.URGENT if tr.rule in urgent else Priority.DETECTION,
                snapshot=snapshot,
            )


def _given(jpeg: bytes) -> Callable[[], bytes]:
    """The camera's own JPEG, as it sent it."""
    return lambda: jpeg


def _snapshot(image: np.ndarray, tr: lifecycle.Transition) -> Callable[[], bytes]:
    """A deferred JPEG of the camera's latest frame with the boxes the camera reported."""
    return lambda: render(image, tr.boxes)
