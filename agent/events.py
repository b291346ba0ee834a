"""The one way producers hand an event to the durable outbox."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# Contract §4 default priorities per event kind.
DEFAULT_PRIORITY: Mapping[str, int] = {
    "alarm": 0,
    "checkin": 1,
    "incident": 1,
    "patrol": 1,
    "ack": 1,
    "detection": 2,
    "notice": 3,
    "media": 4,
}


@dataclass(frozen=True, slots=True)
class Stored:
    """What the outbox returns once an event is durable: its id, seq and exact bytes."""

    id: str
    seq: int
    topic: str
    payload: bytes
    priority: int


class EventSink(Protocol):
    """Stores an event durably; returns only after the bytes are committed."""

    async def emit(
        self, kind: str, body: Mapping[str, Any], *, priority: int | None = None
    ) -> Stored: ...


class MediaSink(Protocol):
    """Keeps photos content-addressed and sends them after the event that names them (§4)."""

    async def store(self, data: bytes, mime: str = "image/jpeg") -> dict[str, Any]:
        """Store the bytes durably (quota-checked) and return the contract's media ref."""
        ...

    async def send(self, ref: Mapping[str, Any], naming: Stored) -> None:
        """Queue the chunks and the `media` event after `naming`, which lists `ref` in photos."""
        ...
