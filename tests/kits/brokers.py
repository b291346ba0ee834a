"""Brokers for tests: Mosquitto as it ships, Mosquitto set up strictly, and amqtt (MQTT 3.1.1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.demo.broker import Broker, free_port, mosquitto_path, wait_listening


def run_mosquitto(workdir: Path, extra_conf: str = "") -> Iterator[Broker]:
    """A fresh Mosquitto on a free loopback port with `extra_conf` lines, stopped afterwards."""
    if mosquitto_path() is None:
        pytest.fail(
            "mosquitto is not installed: scripts/test installs it (apt-get install mosquitto)"
        )
    b = Broker(workdir, extra_conf=extra_conf)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class AmqttBroker(Broker):
    """amqtt (PyPI, pure Python, MQTT 3.1.1 only) in its own process on a free loopback port.

    No persistence: a restart loses sessions and retained messages, as a broker without a
    disk would.
    """

    protocol = 3

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.conf = self.dir / "amqtt.yaml"
        self.log_file = self.dir / "amqtt.log"
        self.conf.write_text(
            "listeners:\n"
            "  default:\n"
            "    type: tcp\n"
            f"    bind: 127.0.0.1:{self.port}\n"
            "plugins:\n"
            "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n"
        )
        self.proc = None

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        exe = Path(sys.executable).with_name("amqtt")
        if not exe.exists():
            pytest.fail("amqtt is not installed: it is in the project's test extras")
        with self.log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_listening(self.host, self.port, self.proc, self.log)


# Mosquitto set up as a strict operator would: small packets (below the 64 KiB chunk), a
# small Receive Maximum, a Server Keep Alive below the agent's, and per-device ACLs by user.
# (Mosquitto's max_keepalive must be >= 10.)
STRICT_ACL = """\
pattern write grid/v1/%u/#
pattern read grid/v1/%u/desired/#
pattern read grid/v1/%u/cmd
pattern read grid/v1/zone/#
pattern read grid/v1/central/state
user central
topic readwrite #
"""


def strict_mosquitto(workdir: Path) -> Iterator[Broker]:
    """Mosquitto with max_packet_size, max_inflight_messages, max_keepalive and an ACL file."""
    workdir.mkdir(parents=True, exist_ok=True)
    acl = workdir / "acl"
    acl.write_text(STRICT_ACL)
    conf = f"max_packet_size 32768\nmax_inflight_messages 5\nmax_keepalive 10\nacl_file {acl}\n"
    for b in run_mosquitto(workdir / "mosquitto", conf):
        b.device_user = "pd-0042"  # type: ignore[attr-defined]
        b.central_user = "central"  # type: ignore[attr-defined]
        b.max_packet = 32768  # type: ignore[attr-defined]
        b.device_keepalive = 30  # type: ignore[attr-defined]  # above max: Server Keep Alive 10
        yield b


def run_amqtt(workdir: Path) -> Iterator[AmqttBroker]:
    """amqtt started for one test."""
    b = AmqttBroker(workdir)
    b.start()
    try:
        yield b
    finally:
        b.stop()


KINDS = {
    "mosquitto": lambda d: run_mosquitto(d),
    "strict": strict_mosquitto,
    "amqtt": run_amqtt,
}


def client_settings(b: object) -> dict[str, object]:
    """The [broker] settings an agent needs for this broker kind (protocol, user)."""
    out: dict[str, object] = {"protocol": getattr(b, "protocol", 5)}
    user = getattr(b, "device_user", None)
    if user is not None:
        out["username"] = user
    keepalive = getattr(b, "device_keepalive", None)
    if keepalive is not None:
        out["keepalive_s"] = keepalive
    return out
