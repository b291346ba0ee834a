"""Operator signing keys: Ed25519 in PKCS8 PEM, written 0600, refused when others can read them."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from agent.errors import ConfigError
from sync.verify import b64url_encode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PublicKey:
    """What a device needs to trust a key: its kid and the raw public key, base64url."""

    kid: str
    public_key: str

    def entry(self) -> str:
        """The key as one inline-table item of the `[trust]` section's `ops_keys = [...]` list."""
        return f'{{ kid = "{self.kid}", public_key = "{self.public_key}" }}'

    def trust_toml(self) -> str:
        """The `ops_keys` line of `[trust]`, inline as the shipped configs write it."""
        return f"ops_keys = [{self.entry()}]\n"

    def provision_flag(self) -> str:
        """The same key as `edge-agent provision` takes it on a device being installed."""
        return f"edge-agent provision --ops-key {self.kid}={self.public_key} ..."


def public_of(key: Ed25519PrivateKey, kid: str) -> PublicKey:
    """The trust entry of a private key."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PublicKey(kid, b64url_encode(raw))


def _check_kid(kid: str) -> None:
    # The same bounds the agent's [trust] section puts on kid.
    if not 1 <= len(kid) <= 64 or '"' in kid or "\\" in kid or not kid.isprintable():
        raise ConfigError([("kid", "must be 1-64 printable characters without quotes")])


def keygen(path: Path, kid: str, *, force: bool = False) -> PublicKey:
    """Write a new key to `path` atomically, mode 0600; never overwrite unless `force`."""
    _check_kid(kid)
    if path.exists() and not force:
        raise ConfigError([(str(path), "already exists (use --force to replace it)")])
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = parent / f".{path.name}.{os.getpid()}.tmp"
        # Created 0600 from the start: the key is never readable by others, not even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask may only remove bits, but say exactly what we mean
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            if force:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # fails if someone created `path` meanwhile
        finally:
            if tmp.exists():
                tmp.unlink()
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except FileExistsError:
        raise ConfigError([(str(path), "already exists (use --force to replace it)")]) from None
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot write the key: {exc.strerror}")]) from None
    log.info("wrote ops key %s to %s", kid, path)
    return public_of(key, kid)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a private key written by keygen; refuse it when group or others may read it."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                [
                    (
                        str(path),
                        f"is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
                        f"a signing key must be private: chmod 600 {path}",
                    )
                ]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read the key: {exc.strerror}")]) from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError([(str(path), f"not an unencrypted PEM private key: {exc}")]) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError([(str(path), "is not an Ed25519 key")])
    return key
