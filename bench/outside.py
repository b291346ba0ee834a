"""One real agent process (`python -m agent run --config FILE`) measured from outside.

Shared by bench/bench_footprint.py and bench/bench_board.py. The parent owns a Mosquitto on
loopback and the simulated GPS (a pty at 1 Hz); the agent is a separate process, so what is
read from /proc/PID is the agent alone: VmRSS/VmHWM, CPU time (utime + stime) over a window,
bytes written (`wchar`: handed to write(2); `write_bytes`: reached the block layer) and the
time from spawn to its retained birth on `grid/v1/D/state`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import tomlkit
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """What /proc says about one process at one moment."""

    at: float  # monotonic
    rss_mb: float
    hwm_mb: float
    cpu_s: float
    wchar: int
    write_bytes: int


def sample(pid: int) -> Sample:
    """Read /proc/PID/{status,stat,io} now."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    kb = {
        ln.split(":")[0]: int(ln.split()[1]) for ln in status if ln.startswith(("VmRSS", "VmHWM"))
    }
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    io = dict(ln.split(": ") for ln in Path(f"/proc/{pid}/io").read_text().splitlines())
    return Sample(
        time.monotonic(),
        kb["VmRSS"] / 1024,
        kb["VmHWM"] / 1024,
        cpu,
        int(io["wchar"]),
        int(io["write_bytes"]),
    )


@dataclass(frozen=True)
class Window:
    """Two samples of one process: rates over the time between them."""

    a: Sample
    b: Sample

    @property
    def cpu_pct(self) -> float:
        return 100.0 * (self.b.cpu_s - self.a.cpu_s) / (self.b.at - self.a.at)

    def per_hour(self, field: str) -> float:
        delta = float(getattr(self.b, field) - getattr(self.a, field))
        return delta * 3600 / (self.b.at - self.a.at)


class Watch:
    """Subscribes to `grid/v1/#` from the parent: births and event counts, per device."""

    def __init__(self, port: int) -> None:
        self.births: dict[str, float] = {}
        self.events: dict[str, int] = {}
        self.status: dict[str, dict[str, Any]] = {}  # the newest status body per device
        self._lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-watch")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_a: c.subscribe("grid/v1/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        with self._lock:
            if parts[-1] == "state" and b'"online":true' in msg.payload.replace(b" ", b""):
                self.births.setdefault(parts[2], time.monotonic())
            elif len(parts) > 4 and parts[3] == "evt":
                self.events[parts[4]] = self.events.get(parts[4], 0) + 1
            elif parts[-1] == "status":
                self.status[parts[2]] = json.loads(msg.payload)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """`data` as the TOML file an owner writes."""
    path.write_text(tomlkit.dumps(data))
    return path


@contextmanager
def agent_process(
    config: Path, log: Path, env: dict[str, str] | None = None, python: Path | None = None
) -> Iterator[int]:
    """`python -m agent run --config config` as a child; SIGTERM (then SIGKILL) at the end.

    `python`: an installed venv's interpreter, run outside this tree so that it imports the
    installed package (default: this interpreter on this tree).
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(python or sys.executable), "-m", "agent", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            cwd=ROOT if python is None else log.parent,
            env={**os.environ, **(env or {})},
        )
    try:
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_birth(watch: Watch, dev: str, since: float, limit_s: float = 60.0) -> float:
    """Seconds from `since` (monotonic) to the device's first retained birth."""
    deadline = time.monotonic() + limit_s
    while dev not in watch.births:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dev}: no birth within {limit_s} s")
        await asyncio.sleep(0.01)
    return watch.births[dev] - since


async def measure(pid: int, seconds: float) -> Window:
    """Sample, let the agent run `seconds`, sample again."""
    a = sample(pid)
    await asyncio.sleep(seconds)
    return Window(a, sample(pid))


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=lambda o: o.__dict__)
