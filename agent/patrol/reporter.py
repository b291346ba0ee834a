"""Stored events of a patrol device besides the engine's: photos, SOS, incidents, snapshots.

`Reporter` owns the path from "something happened" to the outbox for the patrol driver: it
takes photos (a failure is logged and the event goes without one), stores the event, then
queues the photo chunks after it (contract §4 media), and gives the person feedback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config.model import ModeProfile
from agent.errors import DeviceError, StoreError
from agent.events import EventSink
from agent.media import MediaStore
from firmware_bridge.buttons import FeedbackKind
from firmware_bridge.types import Fix
from sync.envelope import TimeStamp
from sync.messages import Priority, Stored

log = logging.getLogger(__name__)


class StillCamera(Protocol):
    """agent.patrol.camera.Camera as the patrol uses it."""

    async def jpeg(self, fix: Fix | None, taken_ms: int, acc_m: float | None = None) -> bytes: ...
    def status(self) -> dict[str, Any]: ...


def position(fix: Fix | None, acc: float | None) -> dict[str, Any]:
    """The lat/lon/acc_m fields of an event body (null without a current fix)."""
    return {
        "lat": fix.lat if fix else None,
        "lon": fix.lon if fix else None,
        "acc_m": None if acc is None else round(acc, 1),
    }


@dataclass
class ReportCounts:
    """What the patrol reporting path stored since start (status `patrol` section)."""

    events: int = 0
    photos: int = 0
    errors: int = 0
    last_error: str | None = None
    checkins: int = 0
    fix_to_outbox_ms: int | None = None  # the last check-in: deciding fix to stored


class Reporter:
    """Stores patrol events with their photos; counts what it did in `counts`."""

    def __init__(
        self,
        *,
        events: EventSink,
        media: MediaStore,
        stamp: Callable[[], TimeStamp],
        staff_id: str | None,
        profile: Callable[[], ModeProfile],
        camera: StillCamera | None = None,
        feedback: Callable[[FeedbackKind], None] | None = None,
    ) -> None:
        self.events = events  # the one way into the outbox (the outlet stores through it too)
        self._media = media
        self._stamp = stamp
        self._staff_id = staff_id
        self.profile = profile
        self.camera = camera
        self._feedback = feedback
        self.counts = ReportCounts()

    async def store(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        journal: bool = False,
    ) -> Stored:
        """Commit one event to the outbox; StoreError when it could not be stored."""
        stored = await self.events.emit(kind, body, priority=priority, journal=journal)
        self.counts.events += 1
        return stored

    async def photos(self, fix: Fix | None, acc: float | None) -> list[dict[str, Any]]:
        """A photo now, kept in the media store: [media ref], or [] when that failed (logged)."""
        if self.camera is None:
            log.warning("a photo was wanted but no [camera] is configured")
            return []
        try:
            jpeg = await self.camera.jpeg(fix, self._stamp().ts, acc)
            ref = await self._media.store(jpeg, "image/jpeg")
        except DeviceError as exc:
            self.error(f"photo not taken: {exc}")
            return []
        except (StoreError, OSError) as exc:
            self.error(f"photo not stored: {exc}")
            return []
        self.counts.photos += 1
        return [ref]

    async def send_media(self, photos: list[dict[str, Any]], naming: Stored) -> None:
        """Queue the chunks and `media` event of each photo after the event naming them."""
        for ref in photos:
            try:
                await self._media.send(ref, naming)
            except (StoreError, OSError) as exc:
                self.error(f"photo {ref['media_id']} chunks not queued: {exc}")

    async def sos(
        self, fix: Fix | None, acc: float | None, note: str, trail: list[list[float]] | None = None
    ) -> Stored:
        """Store an SOS alarm (priority 0) at the given position, with the trail when known."""
        body: dict[str, Any] = {"type": "sos", **position(fix, acc), "note": note}
        if trail:
            body["trail"] = trail
        stored = await self.store("alarm", body)
        log.warning("SOS raised (seq %d)", stored.seq)
        return stored

    async def incident(
        self,
        fix: Fix | None,
        acc: float | None,
        *,
        category: str,
        level: int,
        note: str,
        photo: bool,
        images: Sequence[bytes] = (),
    ) -> Stored:
        """Store an incident, photos first; priority 0 when the mode profile says so for level.

        `images` (JPEG bytes from elsewhere) go into the media store first; StoreError (the
        media quota) refuses the incident so that the sender knows its pictures were not kept.
        """
        photos = [await self._media.store(data, "image/jpeg") for data in images]
        photos += await self.photos(fix, acc) if photo else []
        body = {
            "category": category,
            "level": level,
            "note": note,
            **position(fix, acc),
            "staff_id": self._staff_id,
            "photos": photos,
        }
        p0 = level in self.profile().p0_incident_levels
        stored = await self.store("incident", body, priority=Priority.URGENT if p0 else None)
        log.info("incident %s level %d stored (seq %d)", category, level, stored.seq)
        self.signal("ok")
        await self.send_media(photos, stored)
        return stored

    async def snapshot(self, fix: Fix | None, acc: float | None) -> Stored | None:
        """`cmd snapshot`: a photo with a `notice` {"type":"snapshot"} naming it (see docs)."""
        photos = await self.photos(fix, acc)
        body: dict[str, Any] = {"type": "snapshot", **position(fix, acc), "photos": photos}
        if not photos:
            body["error"] = self.counts.last_error
        try:
            stored = await self.store("notice", body)
        except StoreError as exc:
            self.error(f"snapshot not stored: {exc}")
            return None
        await self.send_media(photos, stored)
        return stored

    def signal(self, kind: FeedbackKind) -> None:
        """LED/buzzer feedback to the person; never raises."""
        if self._feedback is None:
            return
        try:
            self._feedback(kind)
        except Exception:
            # Feedback is a courtesy: a broken LED must never undo what is already stored.
            log.exception("feedback %s failed", kind)

    def error(self, text: str) -> None:
        """Log a failure and keep it for the status message."""
        log.error("%s", text)
        self.counts.errors += 1
        self.counts.last_error = text
