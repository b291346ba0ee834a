"""scripts/install into a temporary root, then `edge-agent provision`: the user and groups, the
venv, config, state dir and enabled unit are there; check-config, systemd-analyze verify and the
doctor's broker checks pass on the result (TLS credentials through the credential store)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kits.cli import edge_agent
from tests.kits.paths import REPO
from tests.kits.pki import start_tls_broker

ROOT = REPO
PIP = f"{sys.executable} -m pip"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a wheel (built once; installed without dependencies: seconds)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("grid_edge-*.whl"))


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    """An empty root with just root's own passwd/group/shadow entries."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("the install test needs root and the passwd package (useradd)")
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (r / "etc/group").write_text("root:x:0:\n")
    (r / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (r / "etc/gshadow").write_text("root:*::\n")
    yield r


def install(root: Path, wheel: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(ROOT / "scripts/install"), "--root", str(root), "--package", str(wheel)]
    cmd += ["--no-deps", "--pip", PIP, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def provision(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return edge_agent("provision", "--root", str(root), "--id", "pd-0042", *args)


def entry(root: Path, name: str, field: int, file: str = "passwd") -> str:
    for line in (root / "etc" / file).read_text().splitlines():
        parts = line.split(":")
        if parts[0] == name:
            return parts[field]
    raise AssertionError(f"{name} not in {file}")


OPS_KEY = "ops-2027=vpigkJU_oVveaPChpTXFzIVert8rn37vHPJChThi10w"


def check_installed(target: Path) -> Path:
    """The install's result: user and groups, venv, owners and modes, enabled unit; the config."""
    # The service user, its own group, and the device groups.
    uid, gid = int(entry(target, "edge-agent", 2)), int(entry(target, "edge-agent", 3))
    assert entry(target, "edge-agent", 6) == "/usr/sbin/nologin"
    for group in ("dialout", "gpio", "video"):
        assert "edge-agent" in entry(target, group, 3, "group").split(",")
    # The venv sees the system site packages (apt's picamera2, lgpio) and has the agent.
    venv = target / "opt/edge-agent/.venv"
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert (venv / "bin/edge-agent").exists()
    # Config, credential store, state dir: owners and modes.
    st = (target / "var/lib/edge-agent").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, 0o750)
    assert stat.S_IMODE((target / "etc/edge-agent/credstore").stat().st_mode) == 0o700
    conf = target / "etc/edge-agent/agent.toml"
    assert conf.read_text() == (ROOT / "configs/patrol.toml").read_text()
    # The unit is installed and enabled.
    wants = target / "etc/systemd/system/multi-user.target.wants/edge-agent.service"
    assert wants.is_symlink()
    return conf


def check_provisioned(target: Path, conf: Path) -> Path:
    """The config, credential store and drop-in after provisioning; returns the store."""
    text = conf.read_text()
    assert 'key_file = "credential:tls.key"' in text and "ops-2027" in text
    # The example key of configs/patrol.toml is replaced, not kept beside the real one.
    assert "ops-2026a" not in text and "o7zB1YpXvG8bK0cRj7oV1m3yOqk9Xx6iW2c5r1sTnEw" not in text
    assert "# Grid Edge — patrol device" in text  # the comments survive
    store = target / "etc/edge-agent/credstore"
    assert stat.S_IMODE((store / "tls.key").stat().st_mode) == 0o600
    drop_in = target / "etc/systemd/system/edge-agent.service.d/credentials.conf"
    assert "LoadCredential=tls.key:/etc/edge-agent/credstore/tls.key" in drop_in.read_text()
    return store


def check_config_and_broker_checks_pass(conf: Path, store: Path) -> None:
    """check-config and the doctor's broker checks pass, credentials from the store."""
    env = {"EDGE_AGENT_CREDSTORE": str(store)}
    out = edge_agent("check-config", str(conf), **env)
    assert out.returncode == 0, out.stderr
    out = edge_agent("doctor", "--config", str(conf), "--lang", "en", **env)
    for check in ("broker.tls", "broker.mqtt", "broker.acl", "broker.key_file"):
        assert any(
            line.split("│")[1].strip() == check and "PASS" in line
            for line in out.stdout.splitlines()
            if line.count("│") > 2
        ), out.stdout


def provision_against_tls_broker(target: Path, conf: Path, tmp_path: Path) -> Path:
    """Provision id, broker, TLS files and an ops key against a real TLS Mosquitto; returns
    the PKI folder."""
    broker, pki = start_tls_broker(tmp_path)
    try:
        out = provision(
            target,
            "--broker",
            f"127.0.0.1:{broker.port}",
            "--ca",
            str(pki / "ca.crt"),
            "--cert",
            str(pki / "device.crt"),
            "--key",
            str(pki / "device.key"),
            "--ops-key",
            OPS_KEY,
        )
        assert out.returncode == 0, out.stderr
        store = check_provisioned(target, conf)
        check_config_and_broker_checks_pass(conf, store)
    finally:
        broker.stop()
    return pki


def check_foreign_key_refused(target: Path, conf: Path, pki: Path) -> str:
    """A key that is not the certificate's: refused, nothing written; returns the config."""
    before = conf.read_text()
    out = provision(
        target,
        "--cert",
        str(pki / "device.crt"),
        "--key",
        str(pki / "server.key"),
    )
    assert out.returncode == 1 and "does not belong" in out.stderr
    assert conf.read_text() == before
    return before


def check_reinstall_keeps_config_and_user(
    target: Path, wheel: Path, conf: Path, before: str
) -> None:
    out = install(target, wheel)
    assert out.returncode == 0, out.stderr
    assert conf.read_text() == before
    users = [line.split(":")[0] for line in (target / "etc/passwd").read_text().splitlines()]
    assert users.count("edge-agent") == 1


def verify_unit(target: Path) -> None:
    """systemd-analyze verify on the installed unit (skips when it is not installed)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: unit not verified")
    # verify resolves units inside the root: it needs systemd's own units there.
    shutil.copytree("/usr/lib/systemd/system", target / "usr/lib/systemd/system", symlinks=True)
    out = subprocess.run(
        [analyze, f"--root={target}", "verify", "edge-agent.service"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_install_then_provision(target: Path, wheel: Path, tmp_path: Path) -> None:
    out = install(target, wheel)
    assert out.returncode == 0, out.stdout + out.stderr
    conf = check_installed(target)
    pki = provision_against_tls_broker(target, conf, tmp_path)
    before = check_foreign_key_refused(target, conf, pki)
    # Installing again keeps the provisioned config and the user.
    check_reinstall_keeps_config_and_user(target, wheel, conf, before)
    verify_unit(target)


def test_docs_unit_and_script_agree_on_user_and_groups() -> None:
    unit = (ROOT / "systemd/edge-agent.service").read_text()
    script = (ROOT / "scripts/install").read_text()
    assert "User=edge-agent" in unit and "Group=edge-agent" in unit
    groups = next(
        line.split("=", 1)[1].split()
        for line in unit.splitlines()
        if line.startswith("SupplementaryGroups=")
    )
    assert sorted(groups) == ["dialout", "gpio", "video"]
    assert "--groups dialout,gpio,video" in script and "user=edge-agent" in script
    for doc in ("README.md", "docs/hardware.md", "docs/install.md"):
        text = (ROOT / doc).read_text()
        assert "`edge-agent`" in text, doc
        for group in groups:
            assert f"`{group}`" in text, (doc, group)
        assert "gridedge" not in text, doc


def test_provision_keeps_array_of_tables_keys_and_rejects_bad_input(tmp_path: Path) -> None:
    conf = tmp_path / "etc/edge-agent/agent.toml"
    conf.parent.mkdir(parents=True)
    pub = "vpigkJU_oVveaPChpTXFzIVert8rn37vHPJChThi10w"
    # The form `edge-agent ops keygen` prints.
    conf.write_text(
        '[device]\nid = "x"\nrole = "patrol"\n\n'
        f'[[trust.ops_keys]]\nkid = "a"\npublic_key = "{pub}"\n\n[sync]\nbackoff_cap_s = 5\n'
    )
    password = tmp_path / "pw"
    password.write_text("secret\n")
    out = provision(
        tmp_path, "--ops-key", f"b={pub}", "--username", "u", "--password-file", str(password)
    )
    assert out.returncode == 0, out.stderr
    data = tomllib.loads(conf.read_text())
    assert [k["kid"] for k in data["trust"]["ops_keys"]] == ["a", "b"]
    assert data["broker"] == {"password_file": "credential:mqtt-password", "username": "u"}
    assert data["sync"] == {"backoff_cap_s": 5} and data["device"]["id"] == "pd-0042"
    before = conf.read_text()
    out = edge_agent("provision", "--root", str(tmp_path), "--id", "PD 1", "--ops-key", "c=xx")
    assert out.returncode == 1 and "--id" in out.stderr and "trust.ops_keys" in out.stderr
    assert conf.read_text() == before
