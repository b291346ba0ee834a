"""The camera gateway as the agent's role: cameras, alarm endpoint, media store, snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from agent.errors import DeviceError
from agent.media import MediaStore
from agent.roles import RoleContext

if TYPE_CHECKING:
    from agent.vision.gateway import Gateway

MEDIA_QUOTA_BYTES = 64 * 1024 * 1024
# A `snapshot` that arrives while its camera is still opening (a start, a reconnect) waits this
# long for a first frame, then fails naming the camera's state: commands are for now (§6).
SNAPSHOT_WAIT_S = 20.0


class GatewayRole:
    """The `Role` of a camera gateway (agent/roles.py)."""

    name = "camera_gateway"

    def __init__(
        self,
        ctx: RoleContext,
        gateway: Gateway,
        media: MediaStore,
        snapshot_wait_s: float = SNAPSHOT_WAIT_S,
    ) -> None:
        self.gateway = gateway
        self._ctx = ctx
        self._media = media
        self.snapshot_wait_s = snapshot_wait_s

    def status(self) -> Mapping[str, Any]:
        """Per-camera state and fps, and the alarm endpoint's counters."""
        cams = self.gateway.status()
        out: dict[str, Any] = {
            "cameras": cams,
            "alarm_http": self.gateway.alarm_status(),
            "detections": self.gateway.detections(),
        }
        failed = {
            f"camera {cam_id}": str(c.get("last_error"))
            for cam_id, c in cams.items()
            if c.get("state") == "failed"
        }
        # A camera running HOG + faces because the person model is missing.
        failed |= {
            f"camera {cam_id} detector": str(c["degraded"])
            for cam_id, c in cams.items()
            if c.get("degraded") and c.get("state") != "failed"
        }
        if failed:
            out["degraded"] = failed  # a camera that cannot run; the others keep going
        return out

    def gps(self) -> Mapping[str, Any] | None:
        """A gateway has no GPS receiver."""
        return None

    def device_checks(self) -> dict[str, str | None]:
        """Each camera: None while it streams, else its state."""
        cams = self.gateway.status()
        checks: dict[str, str | None] = {}
        for cam in self._ctx.cfg.cameras:
            state = cams.get(cam.id, {}).get("state")
            checks[f"camera {cam.id}"] = None if state == "running" else f"state {state}"
        return checks

    def progress(self) -> Mapping[str, int] | None:
        """A gateway runs no patrol tasks."""
        return None

    async def tasks_applied(self, record: Mapping[str, Any]) -> None:
        """Patrol tasks mean nothing to a gateway: kept by the agent, not used."""

    async def snapshot(self, args: Mapping[str, Any]) -> None:
        """`cmd snapshot`: the camera's latest frame as a photo named by a `snapshot` notice.

        A camera still opening is waited for (snapshot_wait_s), then DeviceError says why not.
        """
        from agent.vision.snapshot import render

        cameras = self._ctx.cfg.cameras
        camera_id = str(args.get("camera_id") or (cameras[0].id if cameras else ""))
        known = [cam.id for cam in cameras]
        if camera_id not in known:
            raise DeviceError(
                f"no camera {camera_id!r} here (cameras: {', '.join(known) or 'none'})"
            )
        image = await self.gateway.wait_image(camera_id, self.snapshot_wait_s)
        jpeg = await asyncio.to_thread(render, image, ())
        ref = await self._media.store(jpeg, "image/jpeg")
        naming = await self._ctx.events.emit(
            "notice", {"type": "snapshot", "camera_id": camera_id, "photos": [ref]}
        )
        await self._media.send(ref, naming)


async def start_gateway(ctx: RoleContext, stack: AsyncExitStack) -> GatewayRole:
    """Start every configured camera and the alarm endpoint under `stack`."""
    from agent.vision.gateway import Gateway  # OpenCV is only imported on a gateway

    cfg = ctx.cfg
    media = MediaStore(
        cfg.device.state_dir,
        cfg.device.id,
        ctx.outbox,
        quota_bytes=MEDIA_QUOTA_BYTES,
        events=ctx.events,
    )
    gateway = await stack.enter_async_context(
        Gateway(
            cfg.cameras,
            ctx.events,
            media,
            alarm_http=cfg.alarm_http,
            mode_profile=ctx.mode,
            now_ms=lambda: ctx.clock.stamp().ts,
            spawn=ctx.spawn,
            # A camera whose loops keep crashing fails alone; the other cameras run on.
            spawn_camera=ctx.spawn_part,
        )
    )
    ctx.spawn("media-reaper", media.run_reaper)
    return GatewayRole(ctx, gateway, media)
