"""A real 3-node RabbitMQ cluster (Debian's `rabbitmq-server` 3.10, MQTT plugin) on one machine.

Each node has its own name (gridN@localhost), data and log directories under one temporary
directory, its own loopback ports (MQTT, AMQP, Erlang distribution) and the cluster its own
epmd on a free loopback port, so nothing collides with another RabbitMQ on the machine and
nothing listens beyond 127.0.0.1. MQTT 3.1.1 only; durable MQTT sessions are quorum queues
(`durable_queue_type`, an rabbitmq_mqtt setting 3.10 reads from advanced.config only), so a
session survives the loss of the node it lives on. Starting three fresh nodes, one after
another, takes ~40 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.broker import free_port

SBIN = Path("/usr/lib/rabbitmq/lib")


def rabbit_sbin() -> Path | None:
    """The sbin directory of the installed RabbitMQ (the scripts that do not switch user)."""
    found = sorted(SBIN.glob("rabbitmq_server-*/sbin"))
    return found[-1] if found else None


@dataclass
class Node:
    """One node: name and ports."""

    name: str
    mqtt_port: int
    amqp_port: int
    dist_port: int
    proc: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    protocol: int = 3

    @property
    def port(self) -> int:
        """The MQTT port (what the agent's [broker] port names)."""
        return self.mqtt_port


@dataclass
class RabbitCluster:
    """Three nodes clustered by classic peer discovery."""

    size: int = 3
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="grid-rabbit-")))
    epmd_port: int = field(default_factory=free_port)
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sbin = rabbit_sbin()
        if self.sbin is None:
            pytest.fail("rabbitmq-server is not installed: scripts/setup.sh installs it")
        self.nodes = [
            Node(f"grid{i}@localhost", free_port(), free_port(), free_port())
            for i in range(1, self.size + 1)
        ]
        (self.dir / "home").mkdir(parents=True, exist_ok=True)
        cookie = self.dir / "home" / ".erlang.cookie"
        cookie.write_text(os.urandom(16).hex())
        cookie.chmod(0o400)

    def env(self, node: Node) -> dict[str, str]:
        """The environment that makes a node (or rabbitmqctl for it) use our dirs and ports."""
        base = self.dir / node.name.split("@")[0]
        base.mkdir(exist_ok=True)
        conf = base / "rabbitmq.conf"
        peers = "".join(
            f"cluster_formation.classic_config.nodes.{i} = {n.name}\n"
            for i, n in enumerate(self.nodes, 1)
        )
        conf.write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt_port}\n"
            "mqtt.allow_anonymous = true\n"
            "loopback_users = none\n"
            "cluster_formation.peer_discovery_backend = classic_config\n"
            f"{peers}"
            "management_agent.disable_metrics_collector = true\n"
        )
        (base / "advanced.config").write_text(
            "[{rabbitmq_mqtt, [{durable_queue_type, quorum}]}].\n"
        )
        (base / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir / "home"),
            "LANG": "C.UTF-8",
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "pid"),
            "RABBITMQ_LOGS": str(base / "log" / "rabbit.log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
            # Erlang distribution on loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, timeout: float = 120.0) -> None:
        """Start the nodes one after another, each accepting an MQTT client before the next
        boots; then wait until the cluster lists all of them as running.

        Why not in parallel: 3.10's MQTT plugin forms its client-id tracker (a Raft group)
        from whichever peers it sees at boot. Nodes booting together can each start a
        tracker whose member list the others never join, and a node left so waits for a
        leader forever ("mqtt_node: leader call - leader not known", seen in CI). A node that
        boots after a peer's tracker is up joins that tracker as a member."""
        for node in self.nodes:
            self.start_node(node)
            self.wait_mqtt(node, timeout)
            self.wait_connack(node, timeout)
        self.wait_cluster(timeout)

    def wait_connack(self, node: Node, timeout: float) -> None:
        """Until an MQTT client gets a CONNACK there: the listener opens before the cluster's
        client-id tracker (a Raft group) has settled, and until then connections fail."""
        deadline = time.monotonic() + timeout
        while True:
            got: list[int] = []
            c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{os.urandom(4).hex()}",
                            protocol=paho.MQTTv311)  # fmt: skip
            c.on_connect = lambda _c, _u, _f, rc, _p, got=got: got.append(int(rc.value))
            try:
                c.connect("127.0.0.1", node.mqtt_port, keepalive=10)
                c.loop_start()
                end = time.monotonic() + 5
                while not got and time.monotonic() < end:
                    time.sleep(0.05)
            except OSError:
                pass
            finally:
                c.disconnect()
                c.loop_stop()
            if got == [0]:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{node.name} never accepted an MQTT client\n{self.log(node)}")
            time.sleep(0.5)

    def start_node(self, node: Node) -> None:
        assert self.sbin is not None
        log = self.dir / f"{node.name.split('@')[0]}.out"
        with log.open("ab") as out:
            node.proc = subprocess.Popen(
                [str(self.sbin / "rabbitmq-server")],
                env=self.env(node),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill -9 of the node reaches its whole process group
            )

    def wait_mqtt(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert node.proc is not None and node.proc.poll() is None, self.log(node)
            try:
                socket.create_connection(("127.0.0.1", node.mqtt_port), 1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    msg = f"{node.name} MQTT never listened\n{self.log(node)}"
                    raise AssertionError(msg) from None
                time.sleep(0.25)

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        assert self.sbin is not None
        out = subprocess.run(
            [str(self.sbin / "rabbitmqctl"), "-n", node.name, *args],
            env=self.env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out.stdout + out.stderr

    def wait_cluster(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            status = self.ctl(self.nodes[0], "cluster_status", "--formatter", "json")
            if all(f'"{n.name}"' in status.split('"running_nodes"')[-1] for n in self.nodes):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster did not form:\n{status}")
            time.sleep(0.5)

    def kill(self, node: Node) -> None:
        """kill -9 the node (its whole process group: beam and its helpers)."""
        if node.proc is not None and node.proc.poll() is None:
            os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(10)
        node.proc = None

    def stop(self) -> None:
        """Kill every node and epmd, then delete the directory."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                    node.proc.wait(10)
        subprocess.run(
            ["epmd", "-port", str(self.epmd_port), "-kill"],
            capture_output=True,
            timeout=10,
            env={"PATH": os.environ.get("PATH", ""), "ERL_EPMD_ADDRESS": "127.0.0.1"},
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self, node: Node) -> str:
        name = node.name.split("@")[0]
        text = ""
        for p in (self.dir / f"{name}.out", self.dir / name / "log" / "rabbit.log"):
            if p.exists():
                text += p.read_text(errors="replace")[-30000:]
        return text
