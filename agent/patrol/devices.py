"""Opens the patrol device's hardware from the config: GPS, PN532, buttons/LED/buzzer, camera.

Each part is entered into the caller's exit stack (so it closes with the agent) and comes with
a health check (judged by the config health window) and, where it has counters, a part of the
status message. A part not configured is simply absent.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.config import Config
from agent.patrol.camera import Camera
from agent.patrol.config import ButtonsConfig, PatrolCameraConfig
from firmware_bridge.aio import Spawn, spawn_task
from firmware_bridge.buttons import Buttons, FeedbackKind
from firmware_bridge.gps import GpsSource
from firmware_bridge.pn532_driver import Pn532Reader
from firmware_bridge.types import ButtonPress, Fix, TagScan

DeviceChecks = dict[str, Callable[[], str | None]]
StatusParts = list[Callable[[], Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Devices:
    """What the patrol driver gets from the hardware (None where a part is not configured)."""

    fixes: AsyncIterator[Fix] | None = None
    tags: AsyncIterator[TagScan] | None = None
    presses: AsyncIterator[ButtonPress] | None = None
    feedback: Callable[[FeedbackKind], None] | None = None
    camera: Camera | None = None
    checks: DeviceChecks = field(default_factory=dict)  # part -> its problem now, or None
    status: StatusParts = field(default_factory=list)  # parts of the status body


async def open_devices(
    cfg: Config,
    stack: contextlib.AsyncExitStack,
    *,
    buttons: ButtonsConfig | None,
    camera: PatrolCameraConfig | None,
    spawn: Spawn = spawn_task,
    pin_factory: Any = None,
) -> Devices:
    """Open every configured part into `stack`; a missing serial device is retried, not fatal."""
    fixes = tags = presses = None
    feedback: Callable[[FeedbackKind], None] | None = None
    checks: DeviceChecks = {}
    status: StatusParts = []
    if cfg.gps is not None:
        gps = await stack.enter_async_context(GpsSource(cfg.gps.port, cfg.gps.baud, spawn=spawn))
        fixes = gps.fixes()
        checks["gps"] = functools.partial(_gps_problem, gps)
        status.append(lambda: {"serial": gps.counters()})
    if cfg.nfc is not None:
        reader = await stack.enter_async_context(
            Pn532Reader(
                cfg.nfc.port, cfg.nfc.baud, poll_interval_s=cfg.nfc.poll_interval_s, spawn=spawn
            )
        )
        tags = reader.scans()
        checks["nfc"] = functools.partial(_nfc_problem, reader)
        status.append(lambda: {"nfc": reader.status()})
    if buttons is not None:
        b = buttons
        named = (("sos", b.sos), ("checkin", b.checkin), ("incident", b.incident))
        pins = {name: pin for name, pin in named if pin is not None}
        # The press itself is acknowledged at once; the verdict ("ok"/"error") follows.
        ack: dict[str, FeedbackKind] = {"checkin": "ack", "sos": "sos", "incident": "ack"}
        btns = await stack.enter_async_context(
            Buttons(pins, b.led, b.buzzer, pin_factory, press_feedback=ack)
        )
        presses, feedback = btns.presses(), btns.signal
    cam = None
    if camera is not None:
        cam = await stack.enter_async_context(Camera(camera))
        checks["camera"] = functools.partial(_camera_problem, cam)
    return Devices(fixes, tags, presses, feedback, cam, checks, status)


def _gps_problem(gps: GpsSource) -> str | None:
    return None if gps.counters()["connected"] else f"GPS port {gps.port} is not open"


def _nfc_problem(reader: Pn532Reader) -> str | None:
    return None if reader.status()["present"] else f"PN532 on {reader.port} is not answering"


def _camera_problem(cam: Camera) -> str | None:
    return None if cam.ok() else f"camera {cam.cfg.source}: {cam.status()['last_error']}"
