"""Remote config (§6 `config`): validate, stage, health-check, commit or roll back; restart-safe."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.config import Config, parse
from agent.errors import ConfigError
from sync import envelope
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

# Keys the config document may not carry: they always come from the local file. The contract
# names device.id and the broker credentials; state_dir is added because moving it remotely
# would strand the device's outbox (noted as a proposed contract change).
LOCAL_ONLY: dict[str, tuple[str, ...]] = {
    "device": ("id", "state_dir"),
    "broker": ("username", "password_file", "ca_file", "cert_file", "key_file"),
}
MAX_STARTS_WHILE_PENDING = 3  # a config that keeps killing the agent is rolled back


@dataclass(frozen=True, slots=True)
class Staged:
    """A config document waiting for its health window."""

    doc_id: str
    ver: int
    body: dict[str, Any]
    starts: int


def remote_config(local: Config, body: Mapping[str, Any]) -> Config:
    """The config a document's body yields: the body whole, plus the local-only keys.

    Raises ConfigError (key paths) when the body sets a local-only key or is invalid.
    """
    shape = [
        (section, "must be a table")
        for section, value in body.items()
        if value is not None and not isinstance(value, Mapping | list)
    ]
    if shape:
        raise ConfigError(shape)
    problems = [
        (f"{section}.{key}", "local-only key: may not be changed remotely")
        for section, keys in LOCAL_ONLY.items()
        for key in keys
        if isinstance(body.get(section), Mapping) and key in body[section]
    ]
    if problems:
        raise ConfigError(problems)
    data = copy.deepcopy(dict(body))
    local_data = local.model_dump(mode="json")
    for section, keys in LOCAL_ONLY.items():
        part = dict(data.get(section) or {})
        for key in keys:
            value = local_data[section][key]
            if value is not None:
                part[key] = value
        data[section] = part
    return parse(data)


def validate_body(local: Config) -> Any:
    """A §6 body validator for `config` documents against this device's local file."""

    def check(body: Mapping[str, Any]) -> Config:
        return remote_config(local, body)

    return check


def config_ack(doc_id: str, ver: int, status: str, reason: str | None) -> dict[str, Any]:
    """The one ack a config document gets (§6), at the end of its health window."""
    return envelope.ack_body(ref=doc_id, typ="config", ver=ver, status=status, reason=reason)


def health_problems(*, connected: bool, devices: Mapping[str, str | None]) -> list[str]:
    """Why the health window failed (empty when healthy): broker and each configured device."""
    problems = [] if connected else ["broker not reachable"]
    problems += [f"{name}: {why}" for name, why in sorted(devices.items()) if why is not None]
    return problems


class ConfigStore:
    """state_dir/config/{applied,pending}.json: the last-known-good document and the staged one."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / "config"
        self._dir.mkdir(parents=True, exist_ok=True)

    def applied(self) -> dict[str, Any] | None:
        """The committed document {id, ver, body}, or None while only the local file applies."""
        data = read_json(self._dir / "applied.json")
        return data if isinstance(data, dict) else None

    def pending(self) -> Staged | None:
        """The staged document, if a health window is open (also across a restart)."""
        data = read_json(self._dir / "pending.json")
        if not isinstance(data, dict):
            return None
        return Staged(str(data["id"]), int(data["ver"]), dict(data["body"]), int(data["starts"]))

    def stage(self, doc_id: str, ver: int, body: Mapping[str, Any]) -> None:
        """Record a validated document before switching to it."""
        write_json(
            self._dir / "pending.json", {"id": doc_id, "ver": ver, "body": dict(body), "starts": 0}
        )

    def started(self, staged: Staged) -> Staged:
        """Count one more agent start under the staged config."""
        bumped = Staged(staged.doc_id, staged.ver, staged.body, staged.starts + 1)
        write_json(
            self._dir / "pending.json",
            {"id": bumped.doc_id, "ver": bumped.ver, "body": bumped.body, "starts": bumped.starts},
        )
        return bumped

    def commit(self, staged: Staged) -> None:
        """The staged document passed its health window: it becomes last-known-good."""
        write_json(
            self._dir / "applied.json",
            {"id": staged.doc_id, "ver": staged.ver, "body": staged.body},
        )
        (self._dir / "pending.json").unlink(missing_ok=True)

    def drop(self) -> None:
        """Roll back: forget the staged document."""
        (self._dir / "pending.json").unlink(missing_ok=True)

    def effective(self, local: Config) -> tuple[Config, Staged | None, Config]:
        """(config to run, staged doc or None, last-known-good config)."""
        lkg = local
        applied = self.applied()
        if applied is not None:
            try:
                lkg = remote_config(local, applied["body"])
            except ConfigError as exc:
                # The local file changed under it (e.g. new required key): local file wins.
                log.error(
                    "applied config ver %s no longer valid (%s); using the local file",
                    applied.get("ver"),
                    exc,
                )
        staged = self.pending()
        if staged is None:
            return lkg, None, lkg
        try:
            return remote_config(local, staged.body), staged, lkg
        except ConfigError as exc:
            log.error("staged config ver %d invalid after restart: %s", staged.ver, exc)
            return lkg, staged, lkg
