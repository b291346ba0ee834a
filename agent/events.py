"""The one way producers hand an event to the durable outbox, and photos to the media store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sync.messages import Stored


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
