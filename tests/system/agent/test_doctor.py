"""`edge-agent doctor`: each broken set-up is caught with a fix; a healthy one passes against the
real Mosquitto with simulated GPS and PN532 on ptys."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.demo.broker import Broker, free_port
from agent.doctor import camcheck, texts
from agent.doctor.finding import Finding
from agent.doctor.run import diagnose, report
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import make_config
from tests.kits.cli import edge_agent
from tests.kits.paths import REPO
from tests.kits.pki import start_tls_broker

ROOT = REPO
WALK = [(31.2304, 121.4737), (31.2314, 121.4737)]


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def failed(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f.key for f in findings if f.level == "fail"}


async def run_doctor(cfg: Any, synced: bool = True, **kw: Any) -> list[Finding]:
    findings = await diagnose(cfg, Path("agent.toml"), synced=lambda: synced, listen_s=3.0, **kw)
    # Every finding renders in both languages (no missing key or parameter).
    for lang in ("zh", "en"):
        with open(os.devnull, "w") as sink:
            report(findings, lang, sink)
    return findings


async def test_healthy_setup_passes(tmp_path: Path, broker: Broker) -> None:
    async with (
        GpsSimulator(walk=WALK, speed=5, loop=True) as gps,
        Pn532Simulator() as nfc,
    ):
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            gps={"port": gps.port, "baud": 9600},
            nfc={"port": nfc.port},
        )
        cfg.device.state_dir.mkdir(mode=0o750)
        findings = await run_doctor(cfg)
    assert failed(findings) == {}
    got = by_check(findings)
    assert got["gps"].key == "gps_ok" and got["nfc"].key == "nfc_ok"
    assert "PN532" in got["nfc"].params["fw"]
    assert got["broker.acl"].key == "roundtrip_ok"
    assert got["state_dir"].level == "pass" and got["clock"].level == "pass"
    # The doctor used its own client id: the broker saw `pd-0042-doctor`, not the agent's id.
    assert "pd-0042-doctor" in broker.log()


async def test_missing_port_wrong_broker_port_unsynced_clock(tmp_path: Path) -> None:
    cfg = make_config(
        tmp_path / "state", free_port(), gps={"port": str(tmp_path / "no-such-tty"), "baud": 9600}
    )
    cfg.device.state_dir.mkdir()
    got = failed(await run_doctor(cfg, synced=False))
    assert got["gps"] == "port_open"
    assert got["broker.tcp"] == "tcp_fail"
    # No NTP and the GPS gave no time.
    assert got["clock"] == "clock_unsynced_gps_silent"
    cfg = make_config(tmp_path / "state", free_port())
    assert failed(await run_doctor(cfg, synced=False))["clock"] == "clock_unsynced"


async def test_read_only_and_missing_state_dir(tmp_path: Path, broker: Broker) -> None:
    cfg = make_config(tmp_path / "state", broker.port)
    assert failed(await run_doctor(cfg))["state_dir"] == "state_missing"
    cfg.device.state_dir.mkdir()
    cfg.device.state_dir.chmod(0o555)
    try:
        assert failed(await run_doctor(cfg))["state_dir"] == "state_not_writable"
    finally:
        cfg.device.state_dir.chmod(0o750)


def _self_signed(path: Path, not_before: dt.datetime, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pd-0042")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def test_bad_tls_file_and_expired_certificate(tmp_path: Path, broker: Broker) -> None:
    now = dt.datetime.now(dt.UTC)
    _self_signed(tmp_path / "dev", now - dt.timedelta(days=400), now - dt.timedelta(days=1))
    (tmp_path / "ca.crt").write_text("not a certificate\n")
    cfg = make_config(
        tmp_path / "state",
        broker.port,
        broker={
            "tls": True,
            "ca_file": str(tmp_path / "ca.crt"),
            "cert_file": str(tmp_path / "dev.crt"),
            "key_file": str(tmp_path / "dev.key"),
        },
    )
    got = failed(await run_doctor(cfg))
    assert got["broker.ca_file"] == "cert_bad"
    assert got["broker.cert_file"] == "cert_expired"
    assert got["broker.tls"] == "tls_files"
    # A file that is not there at all.
    (tmp_path / "dev.key").unlink()
    got = failed(await run_doctor(cfg))
    assert got["broker.key_file"] == "file_unreadable"


async def test_healthy_tls_and_a_wrong_ca(tmp_path: Path) -> None:
    broker, pki = start_tls_broker(tmp_path)
    try:
        tls = {
            "tls": True,
            "ca_file": str(pki / "ca.crt"),
            "cert_file": str(pki / "device.crt"),
            "key_file": str(pki / "device.key"),
        }
        cfg = make_config(tmp_path / "state", broker.port, broker=tls)
        cfg.device.state_dir.mkdir()
        findings = await run_doctor(cfg)
        assert by_check(findings)["broker.tls"].level == "pass"
        assert by_check(findings)["broker.cert_file"].key == "cert_expiring"  # 2-day test cert
        assert failed(findings) == {}
        # A CA that did not sign the server's certificate.
        other = tmp_path / "other"
        _self_signed(other, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(9))
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            broker={**tls, "ca_file": str(other.with_suffix(".crt"))},
        )
        assert failed(await run_doctor(cfg))["broker.tls"] == "tls_verify"
    finally:
        broker.stop()


def test_camera_probe_reports_size_and_fps(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    from PIL import Image

    from agent.vision.config import CameraConfig

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 48), (i * 40, 0, 0)).save(frames / f"{i}.png")
    cam = CameraConfig(id="gate", source=f"file:{frames}")
    f = camcheck.camera_verdict("camera gate", cam.source, camcheck.probe_camera(cam))
    assert f.level == "pass" and (f.params["w"], f.params["h"]) == (64, 48)
    cam = CameraConfig(id="gone", source="rtsp://127.0.0.1:1/stream", stall_s=2)
    f = camcheck.camera_verdict("camera gone", cam.source, camcheck.probe_camera(cam, 2))
    assert f.level == "fail"


def test_cli_exit_codes_and_languages(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    conf = tmp_path / "agent.toml"
    conf.write_text(
        f'[device]\nid = "pd-0042"\nrole = "patrol"\nstate_dir = "{state}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {free_port()}\n'
    )
    out = edge_agent("doctor", "--config", str(conf), "--lang", "en")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL" in out.stdout and "cannot connect" in out.stdout
    out = edge_agent("doctor", "--config", str(conf))
    assert out.returncode == 1 and "失败" in out.stdout and "修复方法" in out.stdout
    conf.write_text("[device]\nid = 'BAD ID'\n")
    out = edge_agent("doctor", "--config", str(conf), "--lang", "en")
    assert out.returncode == 1 and "device.id" in out.stdout


def test_check_config_fails_on_missing_or_unreadable_tls_files(tmp_path: Path) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(
        '[device]\nid = "pd-0042"\nrole = "patrol"\n'
        f'[broker]\ntls = true\nca_file = "{tmp_path / "ca.pem"}"\n'
        'username = "pd-0042"\npassword_file = "credential:mqtt-password"\n'
    )
    out = edge_agent("check-config", str(conf))
    assert out.returncode == 3  # valid, but the files are not on this machine
    assert "broker.ca_file" in out.stderr and "broker.password_file" in out.stderr
    (tmp_path / "ca.pem").write_text("x")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("secret\n")
    # Under systemd, LoadCredential= hands the password over in $CREDENTIALS_DIRECTORY.
    out = edge_agent("check-config", str(conf), CREDENTIALS_DIRECTORY=str(creds))
    assert out.returncode == 0, out.stderr
    assert edge_agent("check-config", "--no-files", str(conf)).returncode == 0


def test_every_message_in_both_languages_and_every_failure_documented() -> None:
    doc = (ROOT / "docs" / "troubleshooting.md").read_text()
    for key, langs in texts.MESSAGES.items():
        assert set(langs) == {"zh", "en"}, key
        if langs["en"][1]:  # a message with a fix is a failure or warning: documented
            assert f"`{key}`" in doc, f"docs/troubleshooting.md lacks `{key}`"
    documented = set(re.findall(r"^\| `([a-z_]+)`", doc, re.M))
    assert documented <= set(texts.MESSAGES), documented - set(texts.MESSAGES)


def test_pure_verdicts() -> None:
    from agent.doctor.files import expiry_verdict
    from agent.doctor.serialcheck import PortFacts, gps_verdict, nfc_verdict
    from agent.doctor.system import DirFacts, disk_verdict, state_dir_verdict
    from agent.doctor.timecheck import clock_verdict

    assert disk_verdict(None, 256).key == "disk_unknown"
    assert disk_verdict(10, 256).level == "fail"
    assert disk_verdict(100, 256).level == "warn"
    assert disk_verdict(1000, 256).level == "pass"
    # Mode bits decide for the service user; root's bypass does not count.
    d = DirFacts("/s", True, True, owner=999, group=996, mode=0o750)
    assert state_dir_verdict(d, "edge-agent", 999, frozenset({996})).level == "pass"
    assert state_dir_verdict(d, "other", 1000, frozenset({996})).key == "state_not_writable"
    g = DirFacts("/s", True, True, owner=0, group=996, mode=0o770)
    assert state_dir_verdict(g, "edge-agent", 999, frozenset({996})).level == "pass"
    ro = DirFacts("/s", True, True, owner=999, group=996, mode=0o750, write_error="Read-only")
    assert state_dir_verdict(ro, "edge-agent", 999, frozenset()).key == "state_readonly"
    assert state_dir_verdict(DirFacts("/s", True), "u", 0, frozenset()).key == "state_not_dir"
    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    assert expiry_verdict("c", now - day, now + 400 * day, now).key == "cert_ok"
    assert expiry_verdict("c", now - day, now + 10 * day, now).key == "cert_expiring"
    assert expiry_verdict("c", now - 9 * day, now - day, now).key == "cert_expired"
    assert expiry_verdict("c", now + day, now + 9 * day, now).key == "cert_not_yet"
    assert clock_verdict(True, None, False).key == "clock_synced"
    assert clock_verdict(False, True, True).level == "warn"
    assert clock_verdict(None, None, True).key == "clock_unsynced_gps_silent"
    assert gps_verdict("gps", "p", 9600, PortFacts(bytes_seen=500)).key == "gps_garbage"
    assert gps_verdict("gps", "p", 9600, PortFacts()).key == "gps_silent"
    busy = PortFacts(open_error="Could not exclusively lock port p: [Errno 11]")
    assert nfc_verdict("nfc", "p", 115200, busy).key == "port_busy"


def test_person_model_missing_is_a_degraded_warning(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from agent.doctor.modelcheck import model_findings
    from agent.vision.config import CameraConfig

    cams = [
        CameraConfig.model_validate(
            {"id": i, "source": "v4l2:0", "detector": {"kind": "ssd", "model_dir": "models"}}
        )
        for i in ("a", "b")
    ]
    hog = CameraConfig.model_validate({"id": "h", "source": "v4l2:0", "detector": {"kind": "hog"}})

    cfg = SimpleNamespace(cameras=[*cams, hog])
    (f,) = model_findings(cfg, tmp_path / "agent.toml")
    assert (f.level, f.key, f.params["cams"]) == ("warn", "model_degraded", "a, b")
    assert str(tmp_path / "models") in f.params["path"]
    assert "edge-agent models fetch" in texts.MESSAGES["model_degraded"]["en"][1]
