"""The one way agent code stores an event in the durable outbox, and photos in the media store.

Producers (the patrol outlet and reporter, detections, snapshots, media, acks and notices) hold
an `EventSink`; the agent gives them its `Events`, which counts what was stored per kind.
Media chunks are not events: the media store writes them with `Outbox.append_raw`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sync.messages import Stored

if TYPE_CHECKING:
    from sync.outbox import Outbox


class EventSink(Protocol):
    """Stores an event durably; returns only after the bytes are committed."""

    async def emit(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        group: str | None = None,
        journal: bool = False,
    ) -> Stored: ...


class MediaSink(Protocol):
    """Keeps photos content-addressed and sends them after the event that names them (§4)."""

    async def store(self, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        """Store the bytes durably (quota-checked) and return the contract's media ref."""
        ...

    async def send(self, ref: Mapping[str, Any], naming: Stored) -> None:
        """Queue the chunks and the `media` event after `naming`, which lists `ref` in photos."""
        ...


@dataclass
class EventCounts:
    """Events stored since start, per kind (the status message and metrics read it)."""

    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        """One more `kind` event stored."""
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1


class Events:
    """The agent's `EventSink`: `Outbox.append` for every producer, counted per kind.

    `priority` None takes the kind's default (§4); `group` ties a `media` event to its chunks;
    `journal` keeps a copy past the PUBACK (the patrol hash chain's journal).
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self.counts = EventCounts()

    async def emit(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        group: str | None = None,
        journal: bool = False,
    ) -> Stored:
        """Store one event (or ack) durably; returns after the commit."""
        stored = await self._outbox.append(
            kind, body, priority=priority, group=group, journal=journal
        )
        self.counts.add(kind)
        return stored
