"""Opens the patrol device's hardware from the config: GPS, PN532, buttons/LED/buzzer, camera.

Each part is entered into the caller's exit stack (so it closes with the agent) and comes with
a health check (judged by the config health window) and, where it has counters, a part of the
status message. A part not configured is simply absent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from agent.config.model import Config, NfcConfig, SerialPortConfig
from agent.errors import EXPECTED_ERRORS
from agent.patrol.config import ButtonsConfig, PatrolCameraConfig
from firmware_bridge.aio import Spawn, spawn_task
from firmware_bridge.types import ButtonPress, Fix, TagScan

if TYPE_CHECKING:
    # Imported where the part is configured (footprint: no serial/NMEA/Pillow code otherwise).
    from agent.patrol.camera import Camera
    from firmware_bridge.buttons import FeedbackKind
    from firmware_bridge.gps import GpsSource
    from firmware_bridge.pn532_driver import Pn532Reader

log = logging.getLogger(__name__)

DeviceChecks = dict[str, Callable[[], str | None]]
StatusParts = list[Callable[[], Mapping[str, Any]]]
T = TypeVar("T")
# What an optional part may fail with on a board where it cannot work: reported, not raised.
PART_FAILURES: tuple[type[Exception], ...] = (*EXPECTED_ERRORS, OSError, ImportError)


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
    degraded: dict[str, str] = field(default_factory=dict)  # part -> why it did not start


async def open_devices(
    cfg: Config,
    stack: contextlib.AsyncExitStack,
    *,
    buttons: ButtonsConfig | None,
    camera: PatrolCameraConfig | None,
    spawn: Spawn = spawn_task,
    pin_factory: Any = None,
) -> Devices:
    """Open every configured part into `stack`; a missing serial device is retried, not fatal.

    A part that cannot start at all (no GPIO library, no pin driver, a camera stack missing)
    is left out and listed in `degraded`: one log line, a failing health check, the rest runs.
    """
    parts = _Parts(stack)
    fixes = await _open_gps(parts, cfg.gps, spawn) if cfg.gps is not None else None
    tags = await _open_nfc(parts, cfg.nfc, spawn) if cfg.nfc is not None else None
    presses, feedback = (
        await _open_buttons(parts, buttons, pin_factory) if buttons is not None else (None, None)
    )
    cam = await _open_camera(parts, camera) if camera is not None else None
    degraded = parts.degraded
    # Read at each status: a part that fails later (the local API) is added to the same dict.
    parts.status.append(lambda: {"degraded": dict(degraded)} if degraded else {})
    return Devices(fixes, tags, presses, feedback, cam, parts.checks, parts.status, degraded)


@dataclass
class _Parts:
    """What opening the parts gathers: each one's health check, status part, or failure."""

    stack: contextlib.AsyncExitStack
    checks: DeviceChecks = field(default_factory=dict)
    status: StatusParts = field(default_factory=list)
    degraded: dict[str, str] = field(default_factory=dict)

    async def optional(
        self, part: str, make: Callable[[], AbstractAsyncContextManager[T]]
    ) -> T | None:
        """`start_optional` into this stack: the part entered, or None (noted as degraded)."""
        return await start_optional(self.stack, part, make, self.degraded, self.checks)


async def _open_gps(parts: _Parts, g: SerialPortConfig, spawn: Spawn) -> AsyncIterator[Fix] | None:
    """The GPS receiver's fixes, with its health check and serial counters; None if it failed."""
    # Imported here (footprint: no serial/NMEA code on a device without the part).
    from firmware_bridge.gps import GpsSource

    gps = await parts.optional("gps", lambda: GpsSource(g.port, g.baud, spawn=spawn))
    if gps is None:
        return None
    parts.checks["gps"] = functools.partial(_gps_problem, gps)
    parts.status.append(lambda: {"serial": gps.counters()})
    return gps.fixes()


async def _open_nfc(parts: _Parts, n: NfcConfig, spawn: Spawn) -> AsyncIterator[TagScan] | None:
    """The PN532 reader's tag scans, with its health check and status; None if it failed."""
    from firmware_bridge.pn532_driver import Pn532Reader

    reader = await parts.optional(
        "nfc",
        lambda: Pn532Reader(n.port, n.baud, poll_interval_s=n.poll_interval_s, spawn=spawn),
    )
    if reader is None:
        return None
    parts.checks["nfc"] = functools.partial(_nfc_problem, reader)
    parts.status.append(lambda: {"nfc": reader.status()})
    return reader.scans()


async def _open_buttons(
    parts: _Parts, b: ButtonsConfig, pin_factory: Any
) -> tuple[AsyncIterator[ButtonPress] | None, Callable[[FeedbackKind], None] | None]:
    """The buttons' presses and the LED/buzzer feedback; (None, None) if they failed."""
    from firmware_bridge.buttons import Buttons

    named = (("sos", b.sos), ("checkin", b.checkin), ("incident", b.incident))
    pins = {name: pin for name, pin in named if pin is not None}
    # The press itself is acknowledged at once; the verdict ("ok"/"error") follows.
    ack: dict[str, FeedbackKind] = {"checkin": "ack", "sos": "sos", "incident": "ack"}
    btns = await parts.optional(
        "buttons", lambda: Buttons(pins, b.led, b.buzzer, pin_factory, press_feedback=ack)
    )
    if btns is None:
        return None, None
    return btns.presses(), btns.signal


async def _open_camera(parts: _Parts, c: PatrolCameraConfig) -> Camera | None:
    """The still camera with its health check; None if it failed (Pillow or OpenCV missing)."""
    from agent.patrol.camera import Camera

    cam = await parts.optional("camera", lambda: Camera(c))
    if cam is not None:
        parts.checks["camera"] = functools.partial(_camera_problem, cam)
    return cam


async def start_optional(
    stack: contextlib.AsyncExitStack,
    part: str,
    make: Callable[[], AbstractAsyncContextManager[T]],
    degraded: dict[str, str],
    checks: DeviceChecks,
) -> T | None:
    """Enter `make()` into `stack`, or note `part` in `degraded`/`checks` and return None."""
    try:
        return await stack.enter_async_context(make())
    except PART_FAILURES as exc:
        reason = f"{type(exc).__name__}: {exc}" if isinstance(exc, ImportError) else str(exc)
        log.error("%s not started, running without it: %s", part, reason)
    except Exception as exc:  # a part's own bug must not stop the agent either
        reason = f"{type(exc).__name__}: {exc}"
        log.exception("%s not started, running without it", part)
    degraded[part] = reason
    checks[part] = functools.partial(_not_started, part, reason)
    return None


def _not_started(part: str, reason: str) -> str:
    return f"{part} did not start: {reason}"


def _gps_problem(gps: GpsSource) -> str | None:
    return None if gps.counters()["connected"] else f"GPS port {gps.port} is not open"


def _nfc_problem(reader: Pn532Reader) -> str | None:
    return None if reader.status()["present"] else f"PN532 on {reader.port} is not answering"


def _camera_problem(cam: Camera) -> str | None:
    return None if cam.ok() else f"camera {cam.cfg.source}: {cam.status()['last_error']}"
