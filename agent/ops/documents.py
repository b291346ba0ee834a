"""Pure builders of the §6 downlink payloads (config, tasks, mode, cmd); time and ids passed in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agent.commands.check_config import explain
from agent.config.mergepatch import merge_patch
from agent.config.model import Config
from agent.documents.appliers import validate_cmd_body
from agent.documents.remote_config import LOCAL_ONLY
from agent.errors import ConfigError
from agent.modes import MODES
from agent.patrol.core.schema import parse_tasks_body
from sync.envelope import PREFIX
from sync.verify import MAX_DOWN_PAYLOAD

DEVICE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ZONE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
# Anything this large is an absolute epoch-ms time, not a count of seconds (year 1973 onwards).
_ABSOLUTE_MIN_MS = 100_000_000_000


@dataclass(frozen=True, slots=True)
class DocTarget:
    """Where a document goes: exactly one of a device or a zone."""

    dev: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if (self.dev is None) == (self.zone is None):
            raise ValueError("a target is exactly one of dev or zone")
        if self.dev is not None and not DEVICE_ID.match(self.dev):
            raise ValueError(f"{self.dev!r} is not a device id ([a-z0-9][a-z0-9-]{{0,62}})")
        if self.zone is not None and not ZONE_ID.match(self.zone):
            raise ValueError(f"{self.zone!r} is not a zone id (cells joined by dots)")

    def as_json(self) -> dict[str, str]:
        """The payload's `target` object."""
        return {"dev": self.dev} if self.dev is not None else {"zone": str(self.zone)}

    def __str__(self) -> str:
        return f"dev {self.dev}" if self.dev is not None else f"zone {self.zone}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """A payload ready to sign, with the topic it goes to and whether it is retained."""

    typ: str
    topic: str
    retain: bool
    payload: dict[str, Any]

    @property
    def doc_id(self) -> str:
        """The payload id, which the device's ack names as `ref`."""
        return str(self.payload["id"])


def parse_duration_ms(text: str) -> int:
    """`500ms`, `90s`, `30m`, `2h`, `1d` -> milliseconds; ValueError otherwise."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 2h or 1d")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_time_ms(text: str, now_ms: int) -> int:
    """A point in time: epoch ms, ISO-8601 with a UTC offset, or a duration from `now_ms`."""
    t = text.strip()
    if t.isdigit() and int(t) >= _ABSOLUTE_MIN_MS:
        return int(t)
    if _DURATION.match(t):
        return now_ms + parse_duration_ms(t)
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither epoch ms, an ISO-8601 time nor a duration like 30m"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (write e.g. 2026-05-01T08:00+08:00)")
    return int(when.timestamp() * 1000)


# §6 cmd: a command is meant for now; one that reaches a device later than this is not run.
CMD_EXP_MINUTES = 10.0


def parse_minutes(text: str) -> float:
    """`--exp MINUTES`: a number of minutes above 0 and at most a day; ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of minutes") from None
    if not 0 < value <= 24 * 60:
        raise ValueError("minutes must be more than 0 and at most 1440 (a day)")
    return value


def parse_expires(text: str | None, now_ms: int) -> int | None:
    """`--expires`: None/`never` -> null, else a time per parse_time_ms that is in the future."""
    if text is None or text.strip().lower() in ("never", "none", ""):
        return None
    exp = parse_time_ms(text, now_ms)
    if exp <= now_ms:
        raise ValueError(f"expiry {text!r} is already past")
    return exp


def topic_for(typ: str, target: DocTarget) -> str:
    """The §2 downlink topic of a document; only mode documents may target a zone."""
    if target.zone is not None:
        if typ != "mode":
            raise ValueError(f"{typ} documents go to one device; only mode may target a zone")
        return f"{PREFIX}/zone/{target.zone}/desired/mode"
    if typ == "cmd":
        return f"{PREFIX}/{target.dev}/cmd"
    if typ in ("config", "tasks", "mode"):
        return f"{PREFIX}/{target.dev}/desired/{typ}"
    raise ValueError(f"unknown document type {typ!r}")


def prepare(
    typ: str,
    target: DocTarget,
    body: Mapping[str, Any],
    *,
    now_ms: int,
    doc_id: str,
    ver: int | None = None,
    exp: int | None = None,
) -> Prepared:
    """The §6 payload; `ver` defaults to `now_ms` so successive documents increase."""
    version = now_ms if ver is None else ver
    if version < 0:
        raise ValueError("ver must not be negative")
    payload = {
        "typ": typ,
        "id": doc_id,
        "target": target.as_json(),
        "ver": version,
        "iat": now_ms,
        "exp": exp,
        "body": dict(body),
    }
    # cmd is one-off (§2: not retained); desired documents stay for devices that are offline.
    return Prepared(typ, topic_for(typ, target), typ != "cmd", payload)


def check_size(document: bytes) -> None:
    """Refuse what every device would ack `too_large` (§1)."""
    if len(document) > MAX_DOWN_PAYLOAD:
        raise ValueError(
            f"signed document is {len(document)} bytes; devices accept at most {MAX_DOWN_PAYLOAD}"
        )


def mode_body(mode: str, reason: str) -> dict[str, str]:
    """The §6 mode body."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not reason.strip():
        raise ValueError("a mode change needs a reason")
    return {"mode": mode, "reason": reason}


def cmd_body(action: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The §6 cmd body, checked as the device checks it (unknown argument names refused)."""
    return validate_cmd_body({"action": action, "args": dict(args)})


def tasks_body(data: object) -> dict[str, Any]:
    """Check a tasks body the way the device will (§6 step 6); ConfigError names key paths."""
    parse_tasks_body(data)
    assert isinstance(data, dict)  # parse_tasks_body refuses anything else
    return data


def config_body(data: Mapping[str, Any], dev: str) -> tuple[dict[str, Any], list[str]]:
    """Strip the local-only keys from a config mapping and validate the rest for `dev`.

    Returns the body and the dotted keys that were left out: the device refuses a body that
    carries them (they always come from its local file), so a whole agent.toml can be pushed.
    """
    body: dict[str, Any] = {}
    removed: list[str] = []
    for section, value in data.items():
        if isinstance(value, Mapping) and section in LOCAL_ONLY:
            kept = {k: v for k, v in value.items() if k not in LOCAL_ONLY[section]}
            removed += [f"{section}.{k}" for k in value if k in LOCAL_ONLY[section]]
            body[section] = kept
        else:
            body[section] = value
    device = body.get("device") or {}
    if not isinstance(device, Mapping):
        raise ConfigError([("device", "must be a table")])
    check_patch(body, dev)
    return body, removed


def check_patch(body: Mapping[str, Any], dev: str) -> None:
    """Validate a config body as a merge patch (§6): every key and value it sets must be valid.

    A key the body needs but leaves out (a GPS `port` when only `baud` changes) comes from each
    device's own file, so "missing" is not an error here; the device checks the merged result.
    """
    role = (body.get("device") or {}).get("role") or "patrol"
    merged = merge_patch({"device": {"id": dev, "role": role}}, body)
    try:
        Config.model_validate(merged)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in err["loc"]), "unknown key")
            if err["type"] == "extra_forbidden"
            else (".".join(str(p) for p in err["loc"]), err["msg"])
            for err in exc.errors()
            if err["type"] != "missing"
        ]
        if problems:
            raise ConfigError(explain(problems, merged)) from None
