"""A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1, client certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.demo.broker import Broker
from tests.kits.agents import DEV


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(d: Path, clients: list[str]) -> Path:
    """Write ca.*, server.* (SAN 127.0.0.1) and one <cn>.crt/.key per client CN into `d`."""
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("grid-test-ca"))
        .issuer_name(_name("grid-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(d / "ca", ca_key, ca)
    for cn in ["server", *clients]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1" if cn == "server" else cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if cn == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        _write(d / cn, key, builder.sign(ca_key, hashes.SHA256()))
    return d


def tls_listener(pki: Path, extra: str = "") -> str:
    """Mosquitto listener lines: TLS with this PKI, client certificates required."""
    return (
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        f"require_certificate true\n{extra}"
    )


def start_tls_broker(tmp_path: Path) -> tuple[Broker, Path]:
    """A started Mosquitto requiring TLS with a client certificate (device.crt/.key for DEV)."""
    pki = make_pki(tmp_path / "pki", [DEV])
    for ext in ("crt", "key"):
        (pki / f"{DEV}.{ext}").rename(pki / f"device.{ext}")
    broker = Broker(
        tmp_path / "broker", listener_conf=tls_listener(pki, "use_identity_as_username true\n")
    )
    broker.start()
    return broker, pki
