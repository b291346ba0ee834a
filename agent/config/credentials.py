"""Secrets named in the config as `credential:NAME`: systemd's LoadCredential= copy, else the store.

Under systemd the service reads $CREDENTIALS_DIRECTORY/NAME (a private, read-only copy made by
LoadCredential=, so the originals stay root-only); a person running `check-config` or `doctor`
as root reads the originals in the credential store, /etc/edge-agent/credstore by default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

PREFIX = "credential:"
DEFAULT_STORE = Path("/etc/edge-agent/credstore")


def credential_name(value: str) -> str | None:
    """NAME of a `credential:NAME` value, None for an ordinary path; ValueError when malformed."""
    if not value.startswith(PREFIX):
        return None
    name = value[len(PREFIX) :]
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{value!r}: a credential name is one file name (credential:tls.key)")
    return name


def store_dir(env: Mapping[str, str]) -> Path:
    """Where credentials are read: systemd's copy, else EDGE_AGENT_CREDSTORE, else the default."""
    return Path(
        env.get("CREDENTIALS_DIRECTORY") or env.get("EDGE_AGENT_CREDSTORE") or DEFAULT_STORE
    )


def resolve(value: Path, env: Mapping[str, str]) -> Path:
    """The file to read for a config path: `credential:NAME` resolved, other paths unchanged."""
    name = credential_name(str(value))
    return value if name is None else store_dir(env) / name
