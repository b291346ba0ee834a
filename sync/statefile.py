"""Small durable JSON files in the state dir: atomic replace with fsync of file and folder."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically replace `path` with `data`; durable (file and folder fsynced) when it returns."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json(path: Path, data: Any) -> None:
    """Atomically replace `path` with `data` as JSON; durable when this returns."""
    write_bytes(path, json.dumps(data, separators=(",", ":"), sort_keys=True).encode())


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file written by write_json; a missing or damaged one gives `default` (logged)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        log.error("state file %s unreadable (%s); using defaults", path, exc)
        return default
