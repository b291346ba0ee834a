"""`edge-agent provision`: give an installed device its id, certificates, password and ops keys.

Secrets go into the credential store (root-only) and reach the service through systemd's
LoadCredential= (a drop-in this command writes); the config names them `credential:NAME`.
The config file keeps its comments (tomlkit); nothing is written unless all of it checks out.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from agent.config.credentials import credential_name

# option -> (credential name, [broker] key)
CREDENTIALS = {
    "ca": ("ca.pem", "ca_file"),
    "cert": ("tls.crt", "cert_file"),
    "key": ("tls.key", "key_file"),
    "password_file": ("mqtt-password", "password_file"),
}
DROP_IN = "etc/systemd/system/edge-agent.service.d/credentials.conf"


def add_provision_parser(sub: Any) -> None:
    """Register `provision` on the edge-agent subcommands."""
    p = sub.add_parser("provision", help="install a device's id, certificates and ops keys")
    p.add_argument("--id", required=True, help="device id, e.g. pd-0042")
    p.add_argument("--ca", help="CA certificate of the broker (PEM)")
    p.add_argument("--cert", help="the device's client certificate (PEM)")
    p.add_argument("--key", help="the device's private key (PEM, unencrypted)")
    p.add_argument("--username", help="MQTT user name")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--broker", help="HOST:PORT of the central broker")
    p.add_argument("--zone", action="append", default=None, help="zone to follow (repeatable)")
    p.add_argument(
        "--ops-key", action="append", default=[], metavar="KID=PUBKEY", help="trusted ops key"
    )
    p.add_argument("--root", default="/", help="install root (tests, images); default /")
    p.add_argument("--config", default="etc/edge-agent/agent.toml", help="config, under --root")
    p.set_defaults(func=_cmd_provision)


def key_matches_cert(cert_pem: bytes, key_pem: bytes) -> str | None:
    """Why the key cannot go with the certificate (None when it can)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "--cert is not a PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        return "--key is password-protected; the agent needs an unencrypted key"
    except ValueError:
        return "--key is not a PEM private key"
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, fmt) != key.public_key().public_bytes(enc, fmt):
        return "--key does not belong to --cert"
    return None


def _inputs(args: argparse.Namespace) -> tuple[dict[str, bytes], list[str]]:
    """The credential files to store, read now; and the problems found."""
    problems: list[str] = []
    data: dict[str, bytes] = {}
    for opt, (name, _key) in CREDENTIALS.items():
        src = getattr(args, opt)
        if src is None:
            continue
        try:
            data[name] = Path(src).read_bytes()
        except OSError as exc:
            problems.append(f"--{opt.replace('_', '-')} {src}: {exc.strerror}")
    if ("tls.crt" in data) != ("tls.key" in data) and not problems:
        problems.append("--cert and --key go together")
    if "tls.crt" in data and "tls.key" in data:
        why = key_matches_cert(data["tls.crt"], data["tls.key"])
        if why:
            problems.append(why)
    return data, problems


def _edit(doc: Any, args: argparse.Namespace, stored: set[str]) -> None:
    """Apply the options to the tomlkit document in place."""
    import tomlkit

    from agent.config.model import EXAMPLE_OPS_KEYS

    doc.setdefault("device", tomlkit.table())["id"] = args.id
    if args.zone is not None:
        doc["device"]["zones"] = args.zone
    changes: dict[str, Any] = {}
    if args.broker:
        host, _, port = args.broker.rpartition(":")
        changes.update(host=host, port=int(port))
    for _opt, (name, key) in CREDENTIALS.items():
        if name in stored:
            changes[key] = f"credential:{name}"
    if stored & {"ca.pem", "tls.crt"}:
        changes["tls"] = True
    if args.username:
        changes["username"] = args.username
    if changes:
        doc.setdefault("broker", tomlkit.table()).update(changes)
    keys = {k["kid"]: k["public_key"] for k in doc.get("trust", {}).get("ops_keys", [])}
    if args.ops_key:  # the real keys replace the example key of the shipped configs
        keys = {kid: pub for kid, pub in keys.items() if pub not in EXAMPLE_OPS_KEYS}
    for item in args.ops_key:
        kid, _, pub = item.partition("=")
        keys[kid] = pub
    if keys:
        table = doc.setdefault("trust", tomlkit.table())
        arr = tomlkit.array()
        for kid, pub in keys.items():
            inline = tomlkit.inline_table()
            inline.update({"kid": kid, "public_key": pub})
            arr.append(inline)
        table["ops_keys"] = arr.multiline(True)


def _missing_files(data: dict[str, Any], root: Path, store: Path, new: set[str]) -> list[str]:
    """Files the new config names that will not be there (`new`: credentials about to be)."""
    out = []
    for _opt, (_name, key) in CREDENTIALS.items():
        value = data.get("broker", {}).get(key)
        if value is None:
            continue
        name = credential_name(str(value))
        if name in new:
            continue
        path = store / name if name else root / str(value).lstrip("/")
        if not path.is_file():
            out.append(f"broker.{key} = {value!r}: {path} does not exist")
    return out


def drop_in(store_on_device: Path, names: list[str]) -> str:
    """The unit drop-in handing each stored credential to the service."""
    lines = ["# Written by edge-agent provision: secrets from the credential store.", "[Service]"]
    lines += [f"LoadCredential={n}:{store_on_device / n}" for n in names]
    return "\n".join(lines) + "\n"


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _cmd_provision(args: argparse.Namespace) -> int:
    import tomlkit

    from agent.commands.check_config import example_key_problems
    from agent.config import model as config
    from agent.errors import ConfigError

    root = Path(args.root)
    conf = root / args.config.lstrip("/")
    store_on_device = Path("/etc/edge-agent/credstore")
    store = root / str(store_on_device).lstrip("/")
    data, problems = _inputs(args)
    if not re.fullmatch(config.DEVICE_ID, args.id):
        problems.append(f"--id {args.id!r}: expected {config.DEVICE_ID}")
    try:
        doc = tomlkit.parse(conf.read_text())
    except (OSError, tomlkit.exceptions.ParseError) as exc:
        problems.append(f"{conf}: {exc}")
        doc = tomlkit.document()
    present = {p.name for p in store.iterdir()} if store.is_dir() else set()
    _edit(doc, args, set(data))
    plain = doc.unwrap()
    try:
        cfg = config.parse(plain)
    except ConfigError as exc:
        problems += [f"{key}: {why}" for key, why in exc.problems]
    else:
        problems += [f"{k}: {why} (give --ops-key)" for k, why in example_key_problems(cfg)]
    problems += _missing_files(plain, root, store, set(data))
    if problems:
        print("edge-agent provision: nothing written:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in data.items():
        _write(store / name, content, 0o600)
    _write(conf, tomlkit.dumps(doc).encode(), 0o640)
    unit_dir = (root / DROP_IN).parent
    unit_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(present | set(data))
    _write(root / DROP_IN, drop_in(store_on_device, names).encode(), 0o644)
    print(f"{conf}: device {args.id}; credentials {', '.join(names) or 'none'}")
    print("next: systemctl daemon-reload && systemctl restart edge-agent && edge-agent doctor")
    return 0
