"""Building blocks for agent tests: configs, ops keys, signed documents."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.config.model import Config, parse
from sync.verify import b64url_encode, sign
from tests.kits.brokers import client_settings

DEV = "pd-0042"


class OpsKey:
    """An operator key pair for signing test documents."""

    def __init__(self, kid: str = "ops-test") -> None:
        self.kid = kid
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_b64 = b64url_encode(raw)

    def doc(
        self,
        typ: str,
        body: dict[str, Any],
        *,
        ver: int,
        target: dict[str, str] | None = None,
        exp: int | None = None,
        doc_id: str | None = None,
    ) -> bytes:
        """A signed §6 document."""
        payload = {
            "typ": typ,
            "id": doc_id or str(uuid.uuid4()),
            "target": target or {"dev": DEV},
            "ver": ver,
            "iat": int(time.time() * 1000),
            "exp": exp,
            "body": body,
        }
        return sign(payload, self.kid, self.private)


def make_config(
    state_dir: Path, port: int | Any, key: OpsKey | None = None, **sections: Any
) -> Config:
    """A patrol config against a local broker (its port, or the broker object: then its
    protocol and user too), with `sections` merged over the defaults."""
    settings = {} if isinstance(port, int) else client_settings(port)
    port = port if isinstance(port, int) else port.port
    data: dict[str, Any] = {
        "device": {
            "id": DEV,
            "role": "patrol",
            "zones": ["ruyihu", "ruyihu.cbd"],
            "state_dir": str(state_dir),
        },
        "broker": {
            "host": "127.0.0.1",
            "port": port,
            "keepalive_s": 5,
            "connect_timeout_s": 5,
            **settings,
        },
        "trust": {"ops_keys": [{"kid": key.kid, "public_key": key.public_b64}] if key else []},
        "sync": {"backoff_base_s": 0.1, "backoff_cap_s": 0.5, "puback_timeout_s": 5},
    }
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return parse(data)
