"""Turns lifecycle transitions into contract §4 detection events through the event seam."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agent.errors import CodecError, StoreError
from agent.events import EventSink, MediaSink
from agent.vision.lifecycle import Transition
from agent.vision.rules import Marked
from sync.messages import Stored

log = logging.getLogger(__name__)

Origin = Literal["edge", "camera"]
# A detection body must fit one 128 KiB payload with room to spare (contract §1).
MAX_BOXES = 64


@dataclass(frozen=True, slots=True)
class WallRef:
    """Maps the caller's seconds clock to wall-clock ms: wall_ms was read at time t."""

    t: float
    wall_ms: int

    def ms(self, t: float) -> int:
        """Wall-clock ms of time t."""
        return self.wall_ms + round((t - self.t) * 1000.0)


def boxes_json(boxes: tuple[Marked, ...]) -> list[list[Any]]:
    """Contract boxes: [x, y, w, h, score, label] in integer pixels."""
    return [
        [
            round(m.box[0]),
            round(m.box[1]),
            round(m.box[2]),
            round(m.box[3]),
            round(m.score, 3),
            m.label,
        ]
        for m in boxes[:MAX_BOXES]
    ]


def detection_body(
    camera_id: str, origin: Origin, tr: Transition, wall: WallRef, photos: list[dict[str, Any]]
) -> dict[str, Any]:
    """Exactly the contract §4 detection body for one transition."""
    return {
        "camera_id": camera_id,
        "origin": origin,
        "rule": tr.rule,
        "zone": tr.zone,
        "state": tr.state,
        "track": tr.track,
        "count": tr.count,
        "score": round(tr.score, 3),
        "boxes": boxes_json(tr.boxes),
        "started_ms": wall.ms(tr.started_t),
        "ended_ms": wall.ms(tr.ended_t) if tr.ended_t is not None else None,
        "photos": photos,
    }


class DetectionWriter:
    """Stores the snapshot, emits the detection, then hands the photo to the media sender."""

    def __init__(self, sink: EventSink, media: MediaSink) -> None:
        self._sink = sink
        self._media = media
        self.started: dict[str, int] = {}  # detections begun per rule (status and metrics)

    async def publish(
        self,
        camera_id: str,
        origin: Origin,
        tr: Transition,
        wall: WallRef,
        *,
        priority: int,
        snapshot: Callable[[], bytes] | None = None,
    ) -> Stored | None:
        """Emit one detection event; a failed photo never holds back the event itself."""
        ref: dict[str, Any] | None = None
        if snapshot is not None:
            try:
                jpeg = await asyncio.to_thread(snapshot)
                ref = await self._media.store(jpeg, "image/jpeg")
            except (CodecError, StoreError) as exc:
                log.warning("camera %s %s snapshot dropped: %s", camera_id, tr.rule, exc)
        body = detection_body(camera_id, origin, tr, wall, [ref] if ref is not None else [])
        try:
            stored = await self._sink.emit("detection", body, priority=priority)
        except StoreError as exc:
            log.error(
                "camera %s %s %s (track %s) not stored: %s",
                camera_id,
                tr.rule,
                tr.state,
                tr.track,
                exc,
            )
            return None
        if tr.state == "start":
            self.started[tr.rule] = self.started.get(tr.rule, 0) + 1
        log.info(
            "camera %s %s %s zone=%s count=%d track=%s%s",
            camera_id,
            tr.rule,
            tr.state,
            tr.zone,
            tr.count,
            tr.track,
            f" ({tr.detail})" if tr.detail else "",
        )
        if ref is not None:
            try:
                await self._media.send(ref, stored)
            except StoreError as exc:
                log.warning("camera %s photo of %s not queued: %s", camera_id, stored.id, exc)
        return stored
