"""Wires the camera gateway (agent.vision) into a running Agent: events, photos, mode, status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from agent.errors import DeviceError
from agent.media import MediaStore

if TYPE_CHECKING:
    from agent.app import Agent
    from agent.vision.gateway import Gateway

log = logging.getLogger(__name__)

MEDIA_QUOTA_BYTES = 64 * 1024 * 1024


async def start_gateway(agent: Agent, stack: AsyncExitStack) -> Gateway:
    """Start every configured camera and the alarm endpoint under `stack`; register hooks."""
    from agent.vision.gateway import Gateway  # OpenCV is only imported on a gateway

    cfg = agent.cfg
    media = MediaStore(
        cfg.device.state_dir, cfg.device.id, agent.outbox, quota_bytes=MEDIA_QUOTA_BYTES
    )
    gateway = await stack.enter_async_context(
        Gateway(
            cfg.cameras,
            agent.outbox,
            media,
            alarm_http=cfg.alarm_http,
            mode_profile=lambda: agent.modes.current.name,
            now_ms=lambda: agent.clock.stamp().ts,
        )
    )
    agent.start_task(media.run_reaper(), "media-reaper")

    def status() -> Mapping[str, Any]:
        return {"cameras": gateway.status(), "alarm_http": gateway.alarm_status()}

    agent.status_extra.append(status)
    for cam in cfg.cameras:
        agent.device_checks[f"camera {cam.id}"] = _camera_check(gateway, cam.id)

    async def snapshot(args: Mapping[str, Any]) -> None:
        await _snapshot(agent, gateway, media, args)

    agent.snapshot = snapshot
    return gateway


def _camera_check(gateway: Gateway, camera_id: str) -> Any:
    def check() -> str | None:
        state = gateway.status().get(camera_id, {}).get("state")
        return None if state == "running" else f"state {state}"

    return check


async def _snapshot(
    agent: Agent, gateway: Gateway, media: MediaStore, args: Mapping[str, Any]
) -> None:
    """`cmd snapshot`: the camera's latest frame as a photo named by a `snapshot` notice."""
    from agent.vision.snapshot import render

    camera_id = str(args.get("camera_id") or (agent.cfg.cameras[0].id if agent.cfg.cameras else ""))
    known = [cam.id for cam in agent.cfg.cameras]
    if camera_id not in known:
        raise DeviceError(f"no camera {camera_id!r} here (cameras: {', '.join(known) or 'none'})")
    image = gateway._latest_image(camera_id)
    if image is None:
        raise DeviceError(f"camera {camera_id!r} has no frame to send")
    jpeg = await asyncio.to_thread(render, image, ())
    ref = await media.store(jpeg, "image/jpeg")
    naming = await agent.outbox.append(
        "notice", {"type": "snapshot", "camera_id": camera_id, "photos": [ref]}
    )
    await media.send(ref, naming)
