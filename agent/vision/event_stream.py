"""Subscribe to a camera's own event stream; its notices go the way pushes go (start/update/end).

Two stream kinds: `alert_stream` (multipart/mixed EventNotificationAlert XML blocks, pictures
announced by detectionPicturesNumber following as image parts) and `event_codes`
(multipart/x-mixed-replace `Code=X;action=Start|Stop;index=N` blocks). Heartbeat blocks count as
liveness only. A lost stream ends the alarms it opened, then reconnects with jittered, capped
backoff (sync.reconnect's state machine; clock, sleep and random injected).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

from agent.errors import CodecError, DeviceError
from agent.vision.alarm_multipart import checked_jpeg, event_media_type
from agent.vision.alarm_parse import (
    CameraAlarm,
    expected_pictures,
    is_heartbeat,
    parse_alarm,
    parse_code_line,
)
from agent.vision.events_config import CameraEventsConfig
from agent.vision.http_stream import ByteStream, StreamAuth, StreamTimeouts, open_stream
from agent.vision.multipart import Limits, MultipartReader, Part, boundary_of
from agent.vision.rules import Key
from firmware_bridge.aio import Backoff, Spawn, spawn_task
from sync.reconnect import Reconnect

log = logging.getLogger(__name__)

AlarmHandler = Callable[[CameraAlarm], Awaitable[list[str]]]
Opener = Callable[[str, StreamAuth | None, StreamTimeouts], AbstractAsyncContextManager[ByteStream]]


@dataclass(frozen=True, slots=True)
class _Pending:
    """An alarm waiting for the pictures its notice announced."""

    alarm: CameraAlarm
    pictures_left: int


class EventStream:
    """Async context manager owning one camera's subscription task."""

    def __init__(
        self,
        camera_id: str,
        cfg: CameraEventsConfig,
        password: str | None,
        on_alarm: AlarmHandler,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random | None = None,
        opener: Opener | None = None,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self.camera_id = camera_id
        self._cfg = cfg
        self._auth = (
            StreamAuth(cfg.auth, cfg.username, password)
            if cfg.username is not None and password is not None
            else None
        )
        self._on_alarm = on_alarm
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._opener = opener or self._default_opener
        self._backoff = Backoff(cfg.backoff.initial_s, cfg.backoff.max_s)
        self._task: asyncio.Task[None] | None = None
        self._open: dict[Key, CameraAlarm] = {}
        self._pending: _Pending | None = None
        self._last_byte: float | None = None
        self._lost_at: float | None = None
        self._state = "starting"
        self._counts = {"connects": 0, "reconnects": 0, "alarms": 0, "heartbeats": 0, "skipped": 0}
        self._last_gap_s: float | None = None
        self._last_error: str | None = None

    def _default_opener(
        self, url: str, auth: StreamAuth | None, timeouts: StreamTimeouts
    ) -> AbstractAsyncContextManager[ByteStream]:
        return open_stream(url, auth, timeouts, verify=self._cfg.verify_tls)

    async def __aenter__(self) -> EventStream:
        self._task = self._spawn(f"vision:{self.camera_id}:events", self._run)
        self._task.add_done_callback(self._task_done)
        return self

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._state = "failed"
            self._last_error = f"{type(exc).__name__}: {exc}"
            log.error("camera %s event stream crashed", self.camera_id, exc_info=exc)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        """state (starting/connecting/connected/backoff/failed/stopped), counters, gap, error."""
        return {
            "state": self._state,
            **self._counts,
            "open_alarms": len(self._open),
            "last_gap_s": round(self._last_gap_s, 3) if self._last_gap_s is not None else None,
            "last_error": self._last_error,
        }

    async def _run(self) -> None:
        rc = Reconnect()
        timeouts = StreamTimeouts(self._cfg.connect_timeout_s, self._cfg.idle_timeout_s)
        while True:
            rc = rc.connecting()
            self._state = "connecting"
            try:
                async with self._opener(self._cfg.url, self._auth, timeouts) as stream:
                    rc = rc.connected()
                    self._connected()
                    await self._consume(stream)
                raise DeviceError("the camera closed the stream")
            except (DeviceError, CodecError) as exc:
                rc = rc.failed()
                self._lost(str(exc))
            await self._end_open()
            delay = self._backoff.delay(rc.failures - 1, self._rng)
            self._state = "backoff"
            log.warning(
                "camera %s event stream: %s; reconnecting in %.1f s",
                self.camera_id,
                self._last_error,
                delay,
            )
            await self._sleep(delay)

    def _connected(self) -> None:
        self._state = "connected"
        self._counts["connects"] += 1
        now = self._clock()
        self._last_byte = now
        if self._lost_at is not None:
            self._counts["reconnects"] += 1
            self._last_gap_s = now - self._lost_at
            self._lost_at = None
        log.info("camera %s event stream connected (%s)", self.camera_id, self._cfg.kind)

    def _lost(self, reason: str) -> None:
        self._last_error = reason
        if self._lost_at is None:
            # The gap runs from the last byte the camera sent, not from when we noticed.
            self._lost_at = self._last_byte if self._last_byte is not None else self._clock()

    async def _consume(self, stream: ByteStream) -> None:
        parts: list[Part] = []
        limits = Limits(sys.maxsize, self._cfg.max_part_bytes, self._cfg.max_picture_bytes)
        reader = MultipartReader(boundary_of(stream.content_type), limits, parts.append)
        async for chunk in stream.chunks():
            self._last_byte = self._clock()
            reader.feed(chunk)
            while parts:
                await self._part(parts.pop(0))

    async def _part(self, part: Part) -> None:
        if self._cfg.kind == "event_codes":
            await self._codes(part)
        elif part.is_picture:
            await self._picture(part)
        else:
            await self._flush()
            await self._notice(part)

    async def _codes(self, part: Part) -> None:
        lines = [ln for ln in part.data.splitlines() if ln.strip()]
        found = False
        for line in lines:
            if not (line.startswith(b"Code=") or line.strip().lower() == b"heartbeat"):
                continue  # the JSON `data=` lines some firmware adds after the code line
            found = True
            try:
                alarm = parse_code_line(self.camera_id, line, self._cfg.hold_s)
            except CodecError as exc:
                self._skip(str(exc))
                continue
            if alarm is None:
                self._counts["heartbeats"] += 1
            else:
                await self._deliver(alarm)
        if not found:
            self._skip(f"block without an event code ({part.content_type or 'no type'})")

    async def _notice(self, part: Part) -> None:
        media = event_media_type(part) or "application/xml"
        try:
            alarm = parse_alarm(self.camera_id, media, part.data)
        except CodecError as exc:
            self._skip(str(exc))
            return
        if is_heartbeat(alarm):
            self._counts["heartbeats"] += 1
            return
        wanted = expected_pictures(part.data) if alarm.active and media != "application/json" else 0
        if wanted > 0:
            # Held for its pictures (a repeat's are taken off the line and not used).
            self._pending = _Pending(alarm, wanted)
        else:
            await self._deliver(alarm)

    async def _picture(self, part: Part) -> None:
        pending = self._pending
        if pending is None:
            self._skip("picture without an announcing notice")
            return
        jpeg = None if part.dropped else await asyncio.to_thread(checked_jpeg, part.data)
        if jpeg is None:
            self._skip("picture over the size limit or not a readable JPEG")
        elif pending.alarm.picture is None:
            pending = replace(pending, alarm=replace(pending.alarm, picture=jpeg))
        self._pending = replace(pending, pictures_left=pending.pictures_left - 1)
        if self._pending.pictures_left <= 0:
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            await self._deliver(pending.alarm)

    async def _deliver(self, alarm: CameraAlarm) -> None:
        key = (alarm.rule, alarm.zone)
        if alarm.active:
            self._open[key] = alarm
        else:
            self._open.pop(key, None)
        self._counts["alarms"] += 1
        await self._on_alarm(alarm)

    async def _end_open(self) -> None:
        """The stream is gone: what it opened ends now (a Stop may have been lost with it)."""
        await self._flush()
        for rule, zone in list(self._open):
            await self._deliver(CameraAlarm(self.camera_id, rule, False, zone))

    def _skip(self, reason: str) -> None:
        self._counts["skipped"] += 1
        log.warning("camera %s event stream block skipped: %s", self.camera_id, reason)
