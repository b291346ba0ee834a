"""The project's one small error hierarchy."""

from __future__ import annotations


class GridEdgeError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(GridEdgeError, ValueError):
    """A config file or document is invalid; `problems` lists (key path, reason)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))


class StoreError(GridEdgeError):
    """The durable outbox could not do what was asked."""


class StoreFull(StoreError):
    """The disk or the outbox byte budget refused a write; nothing queued was lost."""


class MediaRefused(StoreFull):
    """New media is refused because only priority 0-1 messages are left in a full outbox."""


class LinkError(GridEdgeError):
    """The MQTT link failed in a way the reconnect loop handles."""


class DeviceError(GridEdgeError):
    """A serial device, camera or GPIO part is missing or misbehaving."""


class CodecError(GridEdgeError):
    """Bytes that a codec cannot turn into a frame or sentence."""
