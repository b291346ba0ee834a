"""The camera gateway: every configured camera's pipeline plus the alarm endpoint, as one unit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np

from agent.camera.sources import FrameSource, open_source
from agent.errors import ConfigError, DeviceError
from agent.events import EventSink, MediaSink
from agent.vision.alarm_http import AlarmHttpServer
from agent.vision.alarms import AlarmForwarder
from agent.vision.config import AlarmHttpConfig, CameraConfig, ForwardingConfig
from agent.vision.detector_choice import build_detector
from agent.vision.detectors import Detector
from agent.vision.event_stream import EventStream
from agent.vision.events_config import CameraEventsConfig
from agent.vision.pipeline import CameraPipeline
from agent.vision.publish import DetectionWriter
from firmware_bridge.aio import Spawn, spawn_task

log = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Gateway:
    """Async context manager running all cameras and, if configured, the alarm endpoint."""

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        sink: EventSink,
        media: MediaSink,
        *,
        alarm_http: AlarmHttpConfig | None = None,
        mode_profile: Callable[[], str] | str = "normal",
        now_ms: Callable[[], int] = _wall_ms,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        base_dir: Path | None = None,
        source_factory: Callable[[CameraConfig], FrameSource] | None = None,
        detector_factory: Callable[[CameraConfig], Detector] | None = None,
        run_id: str | None = None,
        spawn: Spawn = spawn_task,
        spawn_camera: Spawn | None = None,
    ) -> None:
        self._spawn = spawn
        # A camera's own loops (analysis, its event stream): given up alone after repeated
        # crashes (RoleContext.spawn_part).
        self._spawn_camera = spawn_camera or spawn
        ids = [c.id for c in cameras]
        if len(set(ids)) != len(ids):
            raise ConfigError([("cameras", "camera ids must be unique")])
        self._cameras = list(cameras)
        self._alarm_cfg = alarm_http
        self._mode_profile: Callable[[], str] = (
            (lambda: mode_profile) if isinstance(mode_profile, str) else mode_profile
        )
        self._now_ms = now_ms
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._base_dir = base_dir
        self._source_factory = source_factory or (lambda cam: open_source(cam, base_dir))
        self._detector_factory = detector_factory or self._shared_detector
        # One detector per distinct config: the person model is loaded once for all cameras.
        self._detectors: dict[str, Detector] = {}
        self._detectors_lock = threading.Lock()
        # Track ids must not repeat across restarts: the run id makes them unique per start.
        self._run_id = run_id or uuid.uuid4().hex[:8]
        self._publisher = DetectionWriter(sink, media)
        self._pipelines: dict[str, CameraPipeline] = {}
        self._forwarder: AlarmForwarder | None = None
        self._http: AlarmHttpServer | None = None
        self._streams: dict[str, EventStream] = {}
        self._stack: AsyncExitStack | None = None

    def _shared_detector(self, cam: CameraConfig) -> Detector:
        """The detector for `cam`'s config, built once (called from the analysis threads)."""
        frac = cam.motion.full_frame_fraction
        if cam.detector.kind != "ssd":  # the others are cheap to build and keep no lock
            return build_detector(cam.detector, self._base_dir, frac)
        key = f"{cam.detector.model_dump_json()} {frac}"
        with self._detectors_lock:
            det = self._detectors.get(key)
            if det is None:
                det = self._detectors[key] = build_detector(cam.detector, self._base_dir, frac)
            return det

    def set_mode(self, name: str) -> None:
        """Fix the work mode (normal, holiday, major_event, emergency) from now on."""
        self._mode_profile = lambda: name

    @property
    def mode(self) -> str:
        """The active work mode name."""
        return self._mode_profile()

    def _mode(self) -> str:
        return self._mode_profile()

    async def __aenter__(self) -> Gateway:
        token = self._alarm_cfg.load_token(self._base_dir) if self._alarm_cfg else None
        secrets = {c.id: c.events.load_password(self._base_dir) for c in self._cameras if c.events}
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            for cam in self._cameras:
                self._pipelines[cam.id] = await stack.enter_async_context(self._pipeline(cam))
            if token is not None or secrets:
                self._forwarder = await stack.enter_async_context(
                    AlarmForwarder(
                        self._alarm_cfg or ForwardingConfig(),
                        self._publisher,
                        mode=self._mode,
                        clock=self._clock,
                        now_ms=self._now_ms,
                        sleep=self._sleep,
                        latest_image=self.latest_image,
                        track_prefix=self._run_id,
                        spawn=self._spawn,
                    )
                )
            if self._alarm_cfg is not None and token is not None:
                assert self._forwarder is not None
                self._http = await stack.enter_async_context(
                    AlarmHttpServer(
                        self._alarm_cfg,
                        token,
                        known_camera=self._known_camera,
                        on_alarm=self._forwarder.handle,
                    )
                )
            for cam in self._cameras:
                if cam.events is not None and self._forwarder is not None:
                    stream = self._event_stream(cam.id, cam.events, secrets[cam.id])
                    self._streams[cam.id] = await stack.enter_async_context(stream)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        log.info("camera gateway running %d camera(s)", len(self._pipelines))
        return self

    def _pipeline(self, cam: CameraConfig) -> CameraPipeline:
        """`cam`'s analysis pipeline (not yet entered); its track ids are unique to this run."""
        return CameraPipeline(
            cam,
            self._publisher,
            source_factory=self._source_factory,
            detector_factory=self._detector_factory,
            mode=self._mode,
            clock=self._clock,
            now_ms=self._now_ms,
            sleep=self._sleep,
            rng=self._rng,
            track_prefix=f"{cam.id}.{self._run_id}",
            spawn=self._spawn_camera,
        )

    def _event_stream(
        self, camera_id: str, events: CameraEventsConfig, password: str | None
    ) -> EventStream:
        """A camera's pulled event stream (not yet entered); its alarms go to the forwarder."""
        assert self._forwarder is not None
        return EventStream(
            camera_id,
            events,
            password,
            self._forwarder.handle,
            clock=self._clock,
            sleep=self._sleep,
            spawn=self._spawn_camera,  # one camera's stream fails alone too
        )

    async def __aexit__(self, *exc: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            # Reverse order: the endpoint stops taking pushes before anything ends events.
            await stack.aclose()
        self._http = None
        self._forwarder = None
        self._streams = {}

    def _known_camera(self, camera_id: str) -> bool:
        cfg = self._alarm_cfg
        return camera_id in self._pipelines or (cfg is not None and camera_id in cfg.cameras)

    def latest_image(self, camera_id: str) -> np.ndarray | None:
        """The camera's last analysed frame, or None (unknown camera, no frame yet)."""
        pipeline = self._pipelines.get(camera_id)
        return pipeline.latest_image() if pipeline is not None else None

    async def wait_image(self, camera_id: str, within_s: float) -> np.ndarray:
        """The camera's latest frame, waiting up to `within_s` for its first one.

        Raises DeviceError naming the camera's state and last error when none comes in time
        (or the camera has failed for good, without waiting).
        """
        pipeline = self._pipelines.get(camera_id)
        if pipeline is None:
            raise DeviceError(f"camera {camera_id!r} is not running on this gateway")
        status = pipeline.status()
        if pipeline.latest_image() is None and status["state"] != "failed":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within_s):
                    await pipeline.first_frame()
        image = pipeline.latest_image()
        if image is None:
            status = pipeline.status()
            why = f"; last error: {status['last_error']}" if status["last_error"] else ""
            raise DeviceError(
                f"camera {camera_id!r} gave no frame within {within_s:g} s "
                f"(state {status['state']}{why})"
            )
        return image

    def status(self) -> dict[str, dict[str, Any]]:
        """Per camera id: state (starting/running/reopening/failed/stopped), fps, counters, and
        `events`: its event stream's state and counters when it has one."""
        out = {cam_id: p.status() for cam_id, p in self._pipelines.items()}
        for cam_id, stream in self._streams.items():
            out.setdefault(cam_id, {})["events"] = stream.status()
        return out

    def detections(self) -> dict[str, int]:
        """Detections begun since start, per rule (edge and forwarded)."""
        return dict(self._publisher.started)

    def alarm_status(self) -> dict[str, Any] | None:
        """The alarm endpoint's counters and open forwarded alarms, or None when not configured."""
        if self._http is None or self._forwarder is None:
            return None
        return {
            "port": self._http.port,
            "requests": dict(self._http.stats),
            "open_events": self._forwarder.open_events(),
        }

    @property
    def alarm_port(self) -> int | None:
        """The alarm endpoint's bound port, or None when it is not running."""
        return self._http.port if self._http is not None else None
