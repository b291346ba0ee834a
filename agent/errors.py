"""The project's one small error hierarchy, in one place.

Each layer owns its errors (the lower ones cannot import this module): `sync.errors` for the
outbox and the link, `firmware_bridge.errors` for devices and codecs. This module adds the
agent's own and re-exports the rest, so agent code imports every error from here.

    GridEdgeError -> ConfigError                 (agent: config files and documents)
                  -> ArchiveDbError              (ops archive: database down or refusing)
    SyncError     -> StoreError -> StoreFull -> MediaRefused; LinkError
    BridgeError   -> DeviceError, CodecError
"""

from __future__ import annotations

from firmware_bridge.errors import BridgeError, CodecError, DeviceError
from sync.errors import LinkError, MediaRefused, StoreError, StoreFull, SyncError


class GridEdgeError(Exception):
    """Base of every error the agent layer raises on purpose."""


class ConfigError(GridEdgeError, ValueError):
    """A config file or document is invalid; `problems` lists (key path, reason)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))


class ArchiveDbError(GridEdgeError):
    """The archive database is unreachable or refused a batch; nothing of it was committed."""


# Every error any layer raises on purpose: what an applier or a role may fail with.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (GridEdgeError, SyncError, BridgeError)

__all__ = [
    "EXPECTED_ERRORS",
    "ArchiveDbError",
    "BridgeError",
    "CodecError",
    "ConfigError",
    "DeviceError",
    "GridEdgeError",
    "LinkError",
    "MediaRefused",
    "StoreError",
    "StoreFull",
    "SyncError",
]
