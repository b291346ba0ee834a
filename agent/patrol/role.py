"""The patrol device as the agent's role: its hardware, media store, driver and local API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, DeviceError
from agent.media import MediaStore
from agent.patrol.config import (
    ButtonsConfig,
    CompanionConfig,
    PatrolCameraConfig,
    PatrolConfig,
)
from agent.patrol.devices import Devices, open_devices, start_optional
from agent.patrol.driver import PatrolDriver
from agent.patrol.localapi import LocalApi
from agent.roles import RoleContext


class PatrolRole:
    """The `Role` of a patrol device (agent/roles.py)."""

    name = "patrol"

    def __init__(self, driver: PatrolDriver, devices: Devices, companion: Any = None) -> None:
        self.driver = driver
        self._devices = devices
        self.companion = companion  # the CompanionServer when [companion] is enabled

    def status(self) -> Mapping[str, Any]:
        """Serial/NFC counters and the driver's patrol section."""
        out: dict[str, Any] = {}
        for part in self._devices.status:
            out.update(part())
        out.update(self.driver.status())
        return out

    def gps(self) -> Mapping[str, Any] | None:
        """The §8 gps section from the newest fix; None without a receiver (no fix to miss)."""
        return self.driver.gps_status() if self._devices.fixes is not None else None

    def device_checks(self) -> dict[str, str | None]:
        """GPS, NFC and camera, each with its problem now."""
        return {name: check() for name, check in self._devices.checks.items()}

    def progress(self) -> Mapping[str, int] | None:
        """Checkpoints done/missed/total over the whole task set (None: no task set)."""
        return self.driver.progress()

    async def tasks_applied(self, record: Mapping[str, Any]) -> None:
        """A new tasks document replaces the driver's task set (done when this returns)."""
        await self.driver.apply_tasks(record)

    async def snapshot(self, args: Mapping[str, Any]) -> None:
        """A photo now from the patrol camera; DeviceError without one."""
        if self._devices.camera is None:
            raise DeviceError("this patrol device has no camera")
        await self.driver.snapshot(args)


async def start_patrol(
    ctx: RoleContext,
    stack: contextlib.AsyncExitStack,
    *,
    buttons: ButtonsConfig | None = None,
    camera: PatrolCameraConfig | None = None,
    patrol: PatrolConfig | None = None,
    companion: CompanionConfig | None = None,
    pin_factory: Any = None,
) -> PatrolRole:
    """Build the devices, media store, driver and local API from ctx.cfg into `stack`.

    Keyword arguments override the `[buttons]`, `[camera]`, `[patrol]` sections (tests);
    `pin_factory` is gpiozero's (MockFactory in tests).
    """
    cfg = ctx.cfg
    pcfg = patrol or cfg.patrol
    bcfg = buttons or cfg.buttons
    dev = await open_devices(
        cfg,
        stack,
        buttons=bcfg,
        camera=camera or cfg.camera,
        spawn=ctx.spawn,
        pin_factory=pin_factory,
    )
    state_dir = cfg.device.state_dir
    media = await asyncio.to_thread(
        MediaStore,
        state_dir,
        cfg.device.id,
        ctx.outbox,
        quota_bytes=pcfg.media_quota_bytes,
        events=ctx.events,
    )
    driver = _driver(ctx, dev, media, pcfg, bcfg)
    await stack.enter_async_context(driver)
    if pcfg.api:
        await _start_local_api(stack, driver, pcfg, state_dir, dev)
    ccfg = companion or cfg.companion
    page = None
    if ccfg.enabled:
        page = await _start_page(stack, ctx, driver, media, ccfg, dev, pcfg.api_max_body_bytes)
    return PatrolRole(driver, dev, page)


def _driver(
    ctx: RoleContext,
    dev: Devices,
    media: MediaStore,
    pcfg: PatrolConfig,
    bcfg: ButtonsConfig | None,
) -> PatrolDriver:
    """The patrol driver over the opened devices, not entered yet; the mode profile is read at
    each use (the mode changes while it runs)."""
    cfg = ctx.cfg
    return PatrolDriver(
        outbox=ctx.outbox,
        media=media,
        events=ctx.events,
        clock=ctx.clock,
        state_dir=cfg.device.state_dir,
        staff_id=cfg.device.staff_id,
        profile=lambda: cfg.modes.profile(ctx.mode()),
        tasks=ctx.tasks,
        fixes=dev.fixes,
        tags=dev.tags,
        presses=dev.presses,
        feedback=dev.feedback,
        camera=dev.camera,
        settings=pcfg,
        buttons=bcfg,
        spawn=ctx.spawn,
    )


async def _start_local_api(
    stack: contextlib.AsyncExitStack,
    driver: PatrolDriver,
    pcfg: PatrolConfig,
    state_dir: Path,
    dev: Devices,
) -> None:
    """The local API; a port taken or a socket path not writable: the device runs without it."""
    path = pcfg.socket_path(state_dir)
    port = None if path else pcfg.api_port
    await start_optional(
        stack,
        "local_api",
        lambda: LocalApi(driver, socket_path=path, port=port, max_body=pcfg.api_max_body_bytes),
        dev.degraded,
        dev.checks,
    )


async def _start_page(
    stack: contextlib.AsyncExitStack,
    ctx: RoleContext,
    driver: PatrolDriver,
    media: MediaStore,
    ccfg: CompanionConfig,
    dev: Devices,
    max_body: int,
) -> Any:
    """The companion page; a port taken: the device runs without it, and says so."""
    # Imported here: aiohttp is loaded only on a device that serves the page.
    try:
        from agent.patrol.companion.server import CompanionServer
    except ImportError as exc:
        problem = f"needs aiohttp (pip install grid-edge[companion]): {exc}"
        raise ConfigError([("companion.enabled", problem)]) from exc
    return await start_optional(
        stack,
        "companion",
        lambda: CompanionServer(
            driver,
            ccfg,
            state_dir=ctx.cfg.device.state_dir,
            outbox=ctx.outbox,
            online=ctx.online,
            media_path=media.path,
            max_body=max_body,
        ),
        dev.degraded,
        dev.checks,
    )
