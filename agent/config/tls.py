"""A server-side TLS context from a certificate and key file (for endpoints the agent serves)."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.errors import ConfigError


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context; ConfigError naming the file when it cannot be loaded."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as exc:
        # The message names the files, never their content (the key stays out of logs).
        raise ConfigError([(f"{cert_file} / {key_file}", f"cannot load: {exc}")]) from None
    return ctx
