"""The chaos rig: a real agent process fed through its local API, a real Mosquitto, a central
subscriber, and the counting of what was promised against what central got (agent.ops.streamcheck).

An event is *produced* when the local API answered 201 with its id (the agent's promise). It is
*lost* when central never received that id. `recover_s` of one fault is how long after the fault
was healed central had every event promised before the heal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.demo.broker import Broker
from agent.ops.streamcheck import Received, check

ROOT = Path(__file__).resolve().parents[2]
DEV = "pd-chaos"
KEEPALIVE_S = 5


class Central:
    """The central side: a persistent-session subscriber that survives broker restarts."""

    def __init__(self, host: str, port: int, dev: str = DEV) -> None:
        self.received: list[tuple[float, Received]] = []
        self.first_seen: dict[str, float] = {}
        self.skew_ms: list[int] = []  # envelope ts minus central's wall clock, per event
        self._lock = threading.Lock()
        self._topic = f"grid/v1/{dev}/#"
        self._c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="central-chaos", protocol=paho.MQTTv5
        )
        self._c.on_message = self._on_message
        self._c.on_connect = lambda c, *_: c.subscribe(self._topic, qos=1)
        self._c.reconnect_delay_set(0.1, 1.0)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self._c.connect(host, port, clean_start=False, properties=props)
        self._c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        payload = bytes(msg.payload)
        with self._lock:
            self.received.append((now, Received(msg.topic, payload)))
            if "/evt/" in msg.topic:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    env = json.loads(payload)
                    self.first_seen.setdefault(env["id"], now)
                    self.skew_ms.append(int(env["ts"]) - int(time.time() * 1000))

    def has(self, ids: set[str]) -> bool:
        """True when every id in `ids` has arrived."""
        with self._lock:
            return ids <= self.first_seen.keys()

    def close(self) -> None:
        """Disconnect."""
        self._c.loop_stop()
        self._c.disconnect()


def agent_toml(
    state: Path, port: int, *, budget: int = 64 << 20, keepalive: int = KEEPALIVE_S
) -> str:
    """The agent's config: patrol role, local API on a unix socket, level-1 incidents at p0."""
    return f"""
[device]
id = "{DEV}"
role = "patrol"
zones = ["ruyihu"]
state_dir = "{state}"
[broker]
host = "127.0.0.1"
port = {port}
keepalive_s = {keepalive}
connect_timeout_s = 5
[sync]
outbox_budget_bytes = {budget}
puback_timeout_s = 20
backoff_base_s = 0.2
backoff_cap_s = 2
[modes.profiles.normal]
status_interval_s = 2
p0_incident_levels = [1]
"""


class AgentProc:
    """`edge-agent run` as a child process, killed and restarted by the scenarios."""

    def __init__(self, workdir: Path, config: str, env: dict[str, str] | None = None) -> None:
        self.dir = workdir
        self.cfg = workdir / "agent.toml"
        self.cfg.write_text(config)
        self.socket = Path(_state_dir(config)) / "api.sock"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.crashes: list[int] = []

    def start(self) -> None:
        """Spawn the agent (its log goes to agent.log beside the config)."""
        self.starts += 1
        log = open(self.dir / "agent.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(self.cfg)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        """SIGTERM (graceful) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def check_alive(self) -> None:
        """Restart the agent when it exited by itself (counted as a crash)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.crashes.append(self.proc.returncode)
            self.start()


def _state_dir(config: str) -> str:
    return config.split('state_dir = "', 1)[1].split('"', 1)[0]


async def post(
    sock: Path, path: str, body: dict[str, Any], timeout: float = 5.0
) -> tuple[int, Any]:
    """One local-API request on the unix socket; (0, None) when nobody answered."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(str(sock))
            try:
                writer.write(head + data)
                await writer.drain()
                raw = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return 0, None
    status_line, _, rest = raw.partition(b"\r\n")
    try:
        return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])
    except (IndexError, ValueError):
        return 0, None


class Producer:
    """A steady stream of incidents (level 1 is priority 0, level 3 priority 1) and some SOS."""

    def __init__(self, agent: AgentProc, rate_hz: float = 10.0) -> None:
        self.agent = agent
        self.period = 1.0 / rate_hz
        self.promised: dict[str, tuple[int, float]] = {}  # id -> (priority, when)
        self.refused: dict[int, int] = {}  # HTTP status (0: no answer) -> count
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Producer:
        self._task = asyncio.create_task(self._run(), name="chaos-producer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        n = 0
        while True:
            n += 1
            if n % 10 == 0:
                path, body, prio = "/sos", {"note": f"sos {n}"}, 0
            else:
                level = 1 if n % 2 else 3
                path, prio = "/incident", 0 if level == 1 else 1
                body = {"category": "other", "level": level, "note": f"n{n}", "photo": False}
            status, reply = await post(self.agent.socket, path, body)
            if status == 201 and isinstance(reply, dict) and "id" in reply:
                self.promised[reply["id"]] = (prio, time.monotonic())
            else:
                self.refused[status] = self.refused.get(status, 0) + 1
                self.agent.check_alive()
            await asyncio.sleep(self.period)


@dataclass
class Figures:
    """One scenario's counts (see the module docstring)."""

    scenario: str
    faults: int
    produced: int
    delivered: int
    duplicates: int
    lost_p01: int
    missing_other: int
    refused: int
    crashes: int
    recover_s: list[float] = field(default_factory=list)
    detect_s: list[float] = field(default_factory=list)  # half-open noticed after (proxy)
    problems: list[str] = field(default_factory=list)
    notes: str = ""

    def row(self) -> str:
        """One markdown table row."""

        def stat(xs: list[float]) -> str:
            return f"{statistics.median(xs):.1f} / {max(xs):.1f}" if xs else "-"

        return (
            f"| {self.scenario} | {self.faults} | {self.produced} | {self.delivered} | "
            f"{self.duplicates} | {self.lost_p01} | {self.missing_other} | {self.refused} | "
            f"{self.crashes} | {stat(self.recover_s)} | {stat(self.detect_s)} |"
        )


HEADER = (
    "| scenario | faults | produced | delivered | duplicated | lost p0-1 | missing p2-3 seqs | "
    "not accepted | agent crashes | recover s (median / max) | half-open noticed s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


class Rig:
    """Broker, agent, central and producer for one scenario; `heal()` marks a fault's end."""

    def __init__(
        self,
        workdir: Path,
        *,
        state: Path | None = None,
        rate_hz: float = 10.0,
        budget: int = 64 << 20,
        env: dict[str, str] | None = None,
        via_proxy: int | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        self.broker = Broker(workdir / "broker")
        self.state = state or workdir / "state"
        self.heals: list[float] = []
        self._rate = rate_hz
        self._budget = budget
        self._env = env
        self._via_proxy = via_proxy
        self.central: Central | None = None
        self.agent: AgentProc | None = None
        self.producer: Producer | None = None

    def start_agent(self, port: int | None = None) -> AgentProc:
        """Write the config (agent talks to `port`, default the broker) and start the agent."""
        toml = agent_toml(self.state, port or self.broker.port, budget=self._budget)
        self.agent = AgentProc(self.dir, toml, self._env)
        self.agent.start()
        return self.agent

    async def ready(self, timeout: float = 30) -> None:
        """Wait until the agent's API answers."""
        assert self.agent is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, _ = await post(self.agent.socket, "/nothing", {}, timeout=1)
            if status:
                return
            self.agent.check_alive()
            await asyncio.sleep(0.1)
        raise RuntimeError(f"agent did not come up: {(self.dir / 'agent.log').read_text()[-2000:]}")

    def heal(self) -> None:
        """The fault in progress has ended now."""
        self.heals.append(time.monotonic())

    async def drain(self, timeout: float = 90) -> None:
        """Stop producing and wait until central has every promised event (or the timeout)."""
        assert self.producer is not None and self.central is not None
        await self.producer.__aexit__()
        ids = set(self.producer.promised)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.central.has(ids):
            assert self.agent is not None
            self.agent.check_alive()
            await asyncio.sleep(0.2)

    def figures(self, scenario: str, faults: int, detect_s: list[float] | None = None) -> Figures:
        """Count: promised vs received, duplicates and gaps by the stream checker."""
        assert self.producer is not None and self.central is not None and self.agent is not None
        with self.central._lock:
            got = [r for _, r in self.central.received]
            seen = dict(self.central.first_seen)
        report = check(DEV, got, from_seq=None)
        promised = self.producer.promised
        lost = [i for i, (prio, _) in promised.items() if prio <= 1 and i not in seen]
        recover = []
        for h in self.heals:
            before = [seen.get(i) for i, (_, t) in promised.items() if t < h]
            if before and None not in before:
                recover.append(max(0.0, max(t for t in before if t is not None) - h))
        return Figures(
            scenario=scenario,
            faults=faults,
            produced=len(promised),
            delivered=len(set(promised) & seen.keys()),
            duplicates=report.duplicates,
            lost_p01=len(lost),
            missing_other=len(report.missing_seqs),
            refused=sum(self.producer.refused.values()),
            crashes=len(self.agent.crashes),
            recover_s=recover,
            detect_s=detect_s or [],
            problems=sorted({f.code for f in report.problems}),
        )

    async def __aenter__(self) -> Rig:
        await asyncio.to_thread(self.broker.start)
        self.central = Central(self.broker.host, self.broker.port)
        self.start_agent(self._via_proxy)
        await self.ready()
        self.producer = Producer(self.agent, self._rate)  # type: ignore[arg-type]
        await self.producer.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.producer is not None:
            await self.producer.__aexit__()
        if self.agent is not None:
            await asyncio.to_thread(self.agent.stop)
        if self.central is not None:
            self.central.close()
        await asyncio.to_thread(self.broker.stop)
