"""Remote config (§6 `config`): validate, stage, health-check, commit or roll back; restart-safe.

Also what a running agent holds of it (`OtaContext`: the config and ver it runs) and the [trust]
keys documents are verified with (`trusted_keys`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config.mergepatch import merge_patch
from agent.config.model import Config, parse
from agent.errors import ConfigError
from sync import envelope
from sync.statefile import read_json, write_json
from sync.verify import PublicKeys, b64url_decode

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
    # Health checks already failing before the switch (name -> why): they cannot fail this one.
    before: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The pending.json form."""
        return {
            "id": self.doc_id,
            "ver": self.ver,
            "body": self.body,
            "starts": self.starts,
            "before": self.before,
        }


def remote_config(local: Config, body: Mapping[str, Any]) -> Config:
    """The config a document's body yields: the body merged over the local file (RFC 7386).

    Keys the body leaves out keep the file's value (or default); `null` removes. Raises
    ConfigError (key paths) when the body names a local-only key or the result is invalid.
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
    device = body.get("device")
    role = device.get("role") if isinstance(device, Mapping) else None
    if role is not None and role != local.device.role:
        problems.append(
            (
                "device.role",
                f"this device is {local.device.role}; a role is installed, not pushed",
            )
        )
    if problems:
        raise ConfigError(problems)
    data = merge_patch(file_data(local), body)
    local_data = local.model_dump(mode="json")
    for section, keys in LOCAL_ONLY.items():
        # `broker: null` removes the section's other keys, never the device's own wiring.
        part = dict(data.get(section) or {})
        for key in keys:
            if local_data[section][key] is not None:
                part[key] = local_data[section][key]
        data[section] = part
    return parse(data)


def file_data(local: Config) -> dict[str, Any]:
    """What the local file sets (defaults left out), as JSON-like data: the merge's target."""
    return dict(local.model_dump(mode="json", exclude_unset=True))


def validate_body(local: Config) -> Any:
    """A §6 body validator for `config` documents against this device's local file."""

    def check(body: Mapping[str, Any]) -> Config:
        return remote_config(local, body)

    return check


def config_ack(
    doc_id: str, ver: int, status: str, reason: str | None, detail: str | None = None
) -> dict[str, Any]:
    """The one ack a config document gets (§6), at the end of its health window."""
    return envelope.ack_body(
        ref=doc_id, typ="config", ver=ver, status=status, reason=reason, detail=detail
    )


def health_problems(*, connected: bool, devices: Mapping[str, str | None]) -> dict[str, str]:
    """What is unhealthy now (empty when healthy): the broker and each configured device."""
    problems = {} if connected else {"broker": "not reachable"}
    problems.update({name: why for name, why in sorted(devices.items()) if why is not None})
    return problems


def blame(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """The problems a new config caused: failing after the switch and not already before it."""
    return [f"{name}: {why}" for name, why in after.items() if name not in before]


def local_fingerprint(local: Config) -> str:
    """SHA-256 of the local file's remote-manageable part: a changed file has another one."""
    # Only what the file sets: a new agent version with new defaults is not a local edit.
    data = local.model_dump(mode="json", exclude_unset=True)
    for section, keys in LOCAL_ONLY.items():
        for key in keys:
            data.get(section, {}).pop(key, None)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


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
        before = data.get("before")
        return Staged(
            str(data["id"]),
            int(data["ver"]),
            dict(data["body"]),
            int(data["starts"]),
            {str(k): str(v) for k, v in before.items()} if isinstance(before, dict) else {},
        )

    def stage(
        self,
        doc_id: str,
        ver: int,
        body: Mapping[str, Any],
        before: Mapping[str, str] | None = None,
    ) -> None:
        """Record a validated document, and what was failing already, before switching to it."""
        staged = Staged(doc_id, ver, dict(body), 0, dict(before or {}))
        write_json(self._dir / "pending.json", staged.as_json())

    def started(self, staged: Staged) -> Staged:
        """Count one more agent start under the staged config."""
        bumped = replace(staged, starts=staged.starts + 1)
        write_json(self._dir / "pending.json", bumped.as_json())
        return bumped

    def commit(self, staged: Staged, local: Config) -> None:
        """The staged document passed its health window: it becomes last-known-good.

        The local file's fingerprint is kept with it: editing the file later is noticed.
        """
        write_json(
            self._dir / "applied.json",
            {
                "id": staged.doc_id,
                "ver": staged.ver,
                "body": staged.body,
                "local_sha256": local_fingerprint(local),
            },
        )
        (self._dir / "pending.json").unlink(missing_ok=True)
        (self._dir / "rolled_back.json").unlink(missing_ok=True)

    def reset(self) -> int | None:
        """Back to the local file alone: forget the applied and staged documents; their ver."""
        applied = self.applied()
        pending = self.pending()
        for name in ("applied.json", "pending.json", "rolled_back.json"):
            (self._dir / name).unlink(missing_ok=True)
        if pending is not None:
            return pending.ver
        return int(applied["ver"]) if applied is not None else None

    def _superseded(self, local: Config, applied: Mapping[str, Any]) -> bool:
        """True (and the document set aside) when the local file was edited after the apply."""
        sha = applied.get("local_sha256")
        if not isinstance(sha, str) or sha == local_fingerprint(local):
            return False
        # Newest wins: the file was edited after the push, so the file is what the staff want.
        log.warning(
            "the local config file changed after remote config ver %s was applied: "
            "the local file wins, remote config ver %s is set aside "
            "(push a newer config to manage this device remotely again)",
            applied.get("ver"),
            applied.get("ver"),
        )
        write_json(self._dir / "superseded.json", dict(applied))
        (self._dir / "applied.json").unlink(missing_ok=True)
        return True

    def drop(self, why: str | None = None) -> None:
        """Roll back: forget the staged document; `why` is kept as a problem until a commit."""
        pending = self.pending() if why is not None else None
        if pending is not None:
            write_json(self._dir / "rolled_back.json", {"ver": pending.ver, "why": why})
        (self._dir / "pending.json").unlink(missing_ok=True)

    def rolled_back(self) -> str | None:
        """The last rollback in words for people (`reported.problems`); None after a commit."""
        data = read_json(self._dir / "rolled_back.json")
        if not isinstance(data, dict):
            return None
        return f"config ver {data.get('ver')} rolled back: {data.get('why')}"

    def effective(self, local: Config) -> tuple[Config, Staged | None, Config]:
        """(config to run, staged doc or None, last-known-good config)."""
        lkg = local
        applied = self.applied()
        if applied is not None and self._superseded(local, applied):
            applied = None
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


def trusted_keys(cfg: Config) -> PublicKeys:
    """The [trust] keys, each made a verifier object when a document first needs it."""
    return PublicKeys({k.kid: b64url_decode(k.public_key) for k in cfg.trust.ops_keys})


@dataclass(frozen=True, slots=True)
class OtaContext:
    """What the agent needs to run, commit or roll back a remote config."""

    store: ConfigStore
    local: Config  # the local file: source of the local-only keys
    staged: Staged | None  # a config in its health window (this agent runs it)
    lkg: Config  # last-known-good, to go back to
    startup_acks: tuple[dict[str, Any], ...] = field(default=())

    def keys_at_start(self, running: Config) -> PublicKeys:
        """The keys documents are verified with when the agent starts with `running`.

        During a health window the last-known-good's keys stay in force (§6 key rotation: a
        config's own [trust] keys count only once it passed its window).
        """
        return trusted_keys(self.lkg if self.staged else running)

    def config_ver(self) -> int | None:
        """Ver of the config document running now (last-known-good), None: the local file.

        Not the last ver acked: a rolled-back ver is remembered for §6 step 4 but never runs.
        Reads the store's applied.json when nothing is staged.
        """
        if self.staged is not None:
            return self.staged.ver
        applied = self.store.applied()
        return int(applied["ver"]) if applied is not None else None


def describe(local_path: str, cfg_ver: int | None, staged: Staged | None) -> str:
    """One line saying which config runs: the local file, and the remote config over it."""
    if staged is not None:
        return f"local file {local_path} + remote config ver {staged.ver} (in its health window)"
    if cfg_ver is not None:
        return (
            f"local file {local_path} + remote config ver {cfg_ver} "
            "(merged over the file: it names what it changes)"
        )
    return f"local file {local_path} only (no remote config)"
