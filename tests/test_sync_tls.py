"""TLS with a per-device client certificate, against a Mosquitto that requires one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.app import Agent
from agent.localbroker import Broker
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until


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


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for the device."""
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
    for name, cn, san in (("server", "127.0.0.1", True), ("device", DEV, False)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if san:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        _write(d / name, key, builder.sign(ca_key, hashes.SHA256()))


def start_tls_broker(tmp_path: Path) -> tuple[Broker, Path]:
    """A started Mosquitto requiring TLS with a client certificate, and its PKI directory."""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    conf = (
        f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
        "require_certificate true\nuse_identity_as_username true\n"
    )
    broker = Broker(tmp_path / "broker", listener_conf=conf)
    broker.start()
    return broker, pki


async def test_tls_with_client_certificate(tmp_path: Path) -> None:
    broker, pki = start_tls_broker(tmp_path)
    try:
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            broker={
                "tls": True,
                "ca_file": str(pki / "ca.crt"),
                "cert_file": str(pki / "device.crt"),
                "key_file": str(pki / "device.key"),
            },
        )
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.session is not None, what="TLS session")
            await agent.outbox.append("incident", {"n": 1})
            await wait_until(lambda: agent.outbox.depth == 0, what="delivered over TLS")
        # Without the client certificate the broker refuses the handshake.
        bare = make_config(
            tmp_path / "state2", broker.port, broker={"tls": True, "ca_file": str(pki / "ca.crt")}
        )
        async with Agent(bare) as agent:
            await wait_until(lambda: agent.link.machine.failures >= 1, what="refused")
            assert agent.link.session is None
    finally:
        broker.stop()
    assert "pd-0042" in broker.log()
