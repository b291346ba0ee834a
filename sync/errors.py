"""The sync layer's errors: the outbox refused or failed, the MQTT link failed."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error sync raises on purpose."""


class StoreError(SyncError):
    """The durable outbox could not do what was asked."""


class StoreFull(StoreError):
    """The disk or the outbox byte budget refused a write; nothing queued was lost."""


class MediaRefused(StoreFull):
    """New media is refused because only priority 0-1 messages are left in a full outbox."""


class LinkError(SyncError):
    """The MQTT link failed in a way the reconnect loop handles."""


class ProtocolRefused(LinkError):
    """A broker node closed (or refused) an MQTT 5 CONNECT: dial it with MQTT 3.1.1."""
