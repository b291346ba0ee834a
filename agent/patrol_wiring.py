"""Wires the patrol device (agent.patrol_driver and its hardware) into a running Agent."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from agent.localapi import LocalApi
from agent.media import MediaStore
from agent.patrol_config import ButtonsConfig, PatrolCameraConfig, PatrolConfig
from agent.patrol_devices import open_devices
from agent.patrol_driver import PatrolDriver

if TYPE_CHECKING:
    from agent.app import Agent


async def start_patrol(
    agent: Agent,
    stack: contextlib.AsyncExitStack,
    *,
    buttons: ButtonsConfig | None = None,
    camera: PatrolCameraConfig | None = None,
    patrol: PatrolConfig | None = None,
    pin_factory: Any = None,
) -> PatrolDriver:
    """Build the devices, media store, driver and local API from agent.cfg into `stack`.

    Keyword arguments override the `[buttons]`, `[camera]`, `[patrol]` sections (tests);
    `pin_factory` is gpiozero's (MockFactory in tests).
    """
    cfg = agent.cfg
    pcfg = patrol or cfg.patrol
    bcfg = buttons or cfg.buttons
    dev = await open_devices(
        cfg,
        stack,
        buttons=bcfg,
        camera=camera or cfg.camera,
        checks=agent.device_checks,
        status=agent.status_extra,
        pin_factory=pin_factory,
    )
    state_dir = cfg.device.state_dir
    media = await asyncio.to_thread(
        MediaStore, state_dir, cfg.device.id, agent.outbox, quota_bytes=pcfg.media_quota_bytes
    )
    driver = PatrolDriver(
        outbox=agent.outbox,
        media=media,
        clock=agent.clock,
        state_dir=state_dir,
        staff_id=cfg.device.staff_id,
        profile=lambda: agent.cfg.modes.profile(agent.modes.current.name),
        tasks=agent.state.tasks,
        fixes=dev.fixes,
        tags=dev.tags,
        presses=dev.presses,
        feedback=dev.feedback,
        camera=dev.camera,
        settings=pcfg,
        buttons=bcfg,
        on_crash=lambda _exc: agent.stop(),
    )
    await stack.enter_async_context(driver)
    agent.tasks_listeners.append(driver.on_tasks)
    agent.status_extra.append(driver.status)
    agent.gps_status = driver.gps_status
    if dev.camera is not None:
        agent.snapshot = driver.snapshot  # without a camera the agent acks apply_failed
    if pcfg.api:
        path = pcfg.socket_path(state_dir)
        port = None if path else pcfg.api_port
        api = LocalApi(driver, socket_path=path, port=port, max_body=pcfg.api_max_body_bytes)
        await stack.enter_async_context(api)
    return driver
