"""The shipped locked-down Mosquitto (configs/mosquitto): TLS identities and per-device ACLs."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.paths import REPO
from tests.kits.pki import make_pki

SHIPPED = REPO / "configs" / "mosquitto"
OTHER = "pd-0099"
# Lines the test Broker writes itself (its listener, persistence, log, user).
_OWN = ("listener", "allow_anonymous", "persistence", "log_dest", "user ")


def locked_broker(workdir: Path) -> tuple[Broker, Path]:
    """Mosquitto with the shipped config and ACL, certificates and paths of this test."""
    pki = make_pki(workdir / "pki", [DEV, OTHER, "central"])
    (workdir / "acl").write_text((SHIPPED / "acl").read_text())
    conf = (
        (SHIPPED / "mosquitto.conf")
        .read_text()
        .replace("/etc/mosquitto/grid/acl", str(workdir / "acl"))
    )
    conf = conf.replace("/etc/mosquitto/grid/", f"{pki}/")
    lines = [ln for ln in conf.splitlines() if ln.strip() and not ln.startswith(("#", *_OWN))]
    return Broker(workdir / "broker", listener_conf="\n".join(lines) + "\n"), pki


class Client:
    """A paho client with a certificate; keeps what it receives and the PUBACK reason codes."""

    def __init__(self, broker: Broker, pki: Path, cn: str, client_id: str | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: set[int] = set()
        self._lock = threading.Lock()
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or cn, protocol=paho.MQTTv5
        )
        self.c.tls_set(
            ca_certs=str(pki / "ca.crt"),
            certfile=str(pki / f"{cn}.crt"),
            keyfile=str(pki / f"{cn}.key"),
            cert_reqs=ssl.CERT_REQUIRED,
        )
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = lambda _c, _u, mid, *_: self.subacks.add(mid)
        self.c.connect(broker.host, broker.port)
        self.c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks[mid] = int(rc.value)

    def subscribe(self, topic: str) -> None:
        mid = self.c.subscribe(topic, qos=1)[1]
        self.wait(lambda: mid in self.subacks)

    def wait(self, pred: Any) -> None:
        deadline = time.monotonic() + 10
        while not pred() and time.monotonic() < deadline:
            time.sleep(0.02)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        self.wait(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.got]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    broker, pki = locked_broker(tmp_path)
    broker.start()
    try:
        yield broker, pki
    finally:
        broker.stop()


def test_a_device_cannot_publish_as_another(locked: tuple[Broker, Path]) -> None:
    broker, pki = locked
    central = Client(broker, pki, "central")
    central.subscribe("grid/v1/#")
    other = Client(broker, pki, OTHER)
    try:
        assert other.publish(f"grid/v1/{DEV}/evt/incident", b'{"forged":1}') >= 0x80
        assert other.publish(f"grid/v1/{DEV}/state", b"{}", retain=True) >= 0x80
        assert other.publish(f"grid/v1/{OTHER}/desired/config", b"{}") >= 0x80  # downlink
        # Its own topic works, and fences the refused ones (the broker keeps a client's order).
        assert other.publish(f"grid/v1/{OTHER}/evt/incident", b'{"own":1}') == 0
        central.wait(lambda: central.topics())
        assert central.topics() == [f"grid/v1/{OTHER}/evt/incident"]
    finally:
        other.close()
        central.close()


def test_a_client_id_does_not_buy_another_identity(locked: tuple[Broker, Path]) -> None:
    broker, pki = locked
    central = Client(broker, pki, "central")
    central.subscribe("grid/v1/#")
    # Presents OTHER's certificate but DEV's client id: the certificate decides.
    sneaky = Client(broker, pki, OTHER, client_id=DEV)
    try:
        assert sneaky.publish(f"grid/v1/{DEV}/evt/incident", b"{}") >= 0x80
        assert sneaky.publish(f"grid/v1/{OTHER}/status", b"{}") == 0  # as itself: allowed
        central.wait(lambda: central.topics())
        assert central.topics() == [f"grid/v1/{OTHER}/status"]
    finally:
        sneaky.close()
        central.close()


def test_a_device_reads_only_its_own_documents(locked: tuple[Broker, Path]) -> None:
    broker, pki = locked
    central = Client(broker, pki, "central")
    mine, other = Client(broker, pki, DEV), Client(broker, pki, OTHER)
    try:
        for c in (mine, other):
            c.subscribe(f"grid/v1/{DEV}/#")
            c.subscribe("grid/v1/zone/+/desired/mode")
            c.subscribe("grid/v1/central/state")
        assert central.publish(f"grid/v1/{DEV}/desired/tasks", b"doc", retain=True) == 0
        assert central.publish(f"grid/v1/{DEV}/cmd", b"cmd") == 0
        assert central.publish("grid/v1/zone/ruyihu/desired/mode", b"mode", retain=True) == 0
        assert central.publish("grid/v1/central/state", b"{}", retain=True) == 0
        mine.wait(lambda: len(mine.topics()) >= 4)
        assert sorted(mine.topics()) == sorted(
            [
                f"grid/v1/{DEV}/desired/tasks",
                f"grid/v1/{DEV}/cmd",
                "grid/v1/zone/ruyihu/desired/mode",
                "grid/v1/central/state",
            ]
        )
        # central/state went last: once it is in, anything let through before would be too.
        other.wait(lambda: other.topics())
        assert other.topics() == ["grid/v1/central/state"]  # not DEV's documents, not its zone
    finally:
        for c in (mine, other, central):
            c.close()


async def test_the_agent_works_under_the_locked_down_broker(
    locked: tuple[Broker, Path], tmp_path: Path
) -> None:
    broker, pki = locked
    central = Client(broker, pki, "central")
    central.subscribe("grid/v1/#")
    key = OpsKey()
    cfg = make_config(
        tmp_path / "state",
        broker.port,
        key,
        broker={
            "tls": True,
            "ca_file": str(pki / "ca.crt"),
            "cert_file": str(pki / f"{DEV}.crt"),
            "key_file": str(pki / f"{DEV}.key"),
        },
    )
    try:
        async with Agent(cfg, clock=SystemClock()) as agent:
            await wait_until(lambda: agent.link.ready, what="connected")
            stored = await agent.outbox.append("incident", {"n": 1})
            await wait_until(
                lambda: any(stored.id.encode() in p for _, p in central.got), what="delivered"
            )
            mode = key.doc("mode", {"mode": "emergency"}, ver=1, target={"zone": "ruyihu"})
            assert central.publish("grid/v1/zone/ruyihu/desired/mode", mode, retain=True) == 0
            await wait_until(
                lambda: any(t == f"grid/v1/{DEV}/ack" for t in central.topics()),
                what="zone mode acked",
            )
        assert f"grid/v1/{DEV}/state" in central.topics()
    finally:
        central.close()
