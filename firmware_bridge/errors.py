"""The hardware layer's errors: a device that misbehaves, bytes a codec cannot read."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error firmware_bridge raises on purpose."""


class DeviceError(BridgeError):
    """A serial device, camera or GPIO part is missing or misbehaving."""


class CodecError(BridgeError):
    """Bytes that a codec cannot turn into a frame, sentence or image."""
