"""keys: keygen writes 0600 and never overwrites by accident; keys others can read are refused."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.config.model import parse
from agent.documents.remote_config import trusted_keys
from agent.errors import ConfigError
from agent.ops import keys
from tests.kits.paths import REPO


def test_keygen_writes_a_private_pkcs8_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ops.pem"
    pub = keys.keygen(path, "ops-2026a")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert [p.name for p in path.parent.iterdir()] == ["ops.pem"]  # no temp file left
    key = keys.load_private_key(path)
    assert keys.public_of(key, "ops-2026a") == pub


def test_printed_entry_is_what_the_agent_trusts(tmp_path: Path) -> None:
    pub = keys.keygen(tmp_path / "ops.pem", "ops-2026a")
    trust = tomllib.loads(pub.trust_toml())
    cfg = parse({"device": {"id": "pd-1", "role": "patrol"}, "trust": trust})
    verifier = trusted_keys(cfg)["ops-2026a"]
    key = keys.load_private_key(tmp_path / "ops.pem")
    verifier.verify(key.sign(b"payload"), b"payload")  # raises when the keys do not match


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "ops.pem"
    first = keys.keygen(path, "ops-a")
    with pytest.raises(ConfigError, match="already exists"):
        keys.keygen(path, "ops-a")
    assert keys.public_of(keys.load_private_key(path), "ops-a") == first
    second = keys.keygen(path, "ops-a", force=True)
    assert second != first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_keygen_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        keys.keygen(tmp_path / "ops.pem", "ops-a")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ops.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_keys_others_can_read_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "ops.pem"
    keys.keygen(path, "ops-a")
    path.chmod(mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o}.*chmod 600"):
        keys.load_private_key(path)


def test_bad_key_files(tmp_path: Path) -> None:
    missing = tmp_path / "none.pem"
    with pytest.raises(ConfigError, match="cannot read"):
        keys.load_private_key(missing)
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a key")
    junk.chmod(0o600)
    with pytest.raises(ConfigError, match="PEM private key"):
        keys.load_private_key(junk)
    other = tmp_path / "ec.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    other.write_bytes(pem)
    other.chmod(0o600)
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        keys.load_private_key(other)


@pytest.mark.parametrize("kid", ["", "x" * 65, 'a"b'])
def test_bad_kids_are_refused(tmp_path: Path, kid: str) -> None:
    with pytest.raises(ConfigError, match="kid"):
        keys.keygen(tmp_path / "ops.pem", kid)
    assert not (tmp_path / "ops.pem").exists()


@pytest.mark.parametrize("shipped", ["patrol.toml", "camera_gateway.toml"])
def test_printed_lines_fit_the_shipped_configs(tmp_path: Path, shipped: str) -> None:
    # Trap: keygen printed a [[trust.ops_keys]] block, which breaks the shipped configs'
    # inline `ops_keys = [...]` when pasted. Now: an item for the list, or the whole line.
    pub = keys.keygen(tmp_path / "ops.pem", "ops-2026b")
    text = (REPO / "configs" / shipped).read_text()
    added = text.replace("ops_keys = [", f"ops_keys = [{pub.entry()}, ", 1)
    kids = [k["kid"] for k in tomllib.loads(added)["trust"]["ops_keys"]]
    assert kids == ["ops-2026b", "ops-2026a"]
    line = next(ln for ln in text.splitlines() if ln.startswith("ops_keys = "))
    replaced = text.replace(line, pub.trust_toml().strip())
    assert tomllib.loads(replaced)["trust"]["ops_keys"] == [
        {"kid": "ops-2026b", "public_key": pub.public_key}
    ]
