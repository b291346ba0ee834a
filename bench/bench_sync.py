"""Benchmark: bare paho vs the agent's outbox and drain, and an idle agent's RSS/CPU.

Run: .venv/bin/python bench/bench_sync.py [--messages 100000] [--idle-seconds 30]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import SystemClock
from agent.config.model import parse
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from sync.outbox import Outbox

BODY = {
    "task_id": "t-1",
    "checkpoint_id": "cp-7",
    "method": "gps",
    "lat": 34.77905,
    "lon": 113.7312,
    "acc_m": 4.2,
    "fix": "3d",
    "sats": 11,
    "hdop": 0.9,
}


def bare_paho(port: int, n: int, window: int = 100) -> float:
    """(a) msg/s of a plain paho QoS 1 publisher, one thread, at most `window` unacknowledged."""
    acked = 0

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
    c.max_inflight_messages_set(0)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    payload = b"x" * 330  # about the size of a check-in envelope
    sent = 0
    t0 = time.perf_counter()
    while acked < n:
        while sent < n and sent - acked < window:
            c.publish(f"bench/{sent % 8}", payload, qos=1)
            sent += 1
        c.loop(timeout=1.0)
    dt = time.perf_counter() - t0
    c.disconnect()
    return n / dt


async def append_rates(state: Path, n: int, producers: int) -> tuple[float, float]:
    """(b) durable appends/s one at a time, and with `producers` concurrent producers."""
    clock = SystemClock()
    async with Outbox(state, "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob:
        k = min(n, 5000)
        t0 = time.perf_counter()
        for _ in range(k):
            await ob.append("checkin", BODY)
        serial = k / (time.perf_counter() - t0)

        per = n // producers

        async def produce() -> None:
            for _ in range(per):
                await ob.append("checkin", BODY)

        t0 = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(producers)))
        concurrent = per * producers / (time.perf_counter() - t0)
    return serial, concurrent


def config(state: Path, port: int) -> dict:
    return {
        "device": {"id": "pd-bench", "role": "patrol", "state_dir": str(state)},
        "broker": {"host": "127.0.0.1", "port": port},
        "sync": {"inflight_window": 100, "outbox_budget_bytes": 1 << 34},
    }


async def drain(state: Path, broker: Broker, n: int) -> float:
    """(c) msg/s for the agent to drain an `n`-message backlog to the broker."""
    clock = SystemClock()
    async with Outbox(state, "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob:
        await asyncio.gather(*(ob.append("checkin", BODY) for _ in range(n)))
        backlog = ob.depth
    cfg = parse(config(state, broker.port))
    async with Agent(cfg) as agent:
        while agent.link.session is None:
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        while agent.outbox.depth > 0:
            await asyncio.sleep(0.005)
        dt = time.perf_counter() - t0
    return backlog / dt


def idle(state: Path, port: int, seconds: float) -> tuple[float, float]:
    """(d) RSS (MB) and CPU (% of one core) of an idle `edge-agent run`."""
    conf = state / "agent.toml"
    state.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        f'[device]\nid = "pd-idle"\nrole = "patrol"\nstate_dir = "{state}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    exe = Path(sys.executable).with_name("edge-agent")
    proc = subprocess.Popen([str(exe), "run", "--config", str(conf)], stdout=subprocess.DEVNULL)
    time.sleep(5)  # start-up is not idle
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    c0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu(), time.monotonic()
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    proc.terminate()
    proc.wait(10)
    return rss_kb / 1024, 100 * (c1 - c0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--producers", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        broker = Broker(base / "broker")
        broker.start()
        try:
            a = bare_paho(broker.port, args.messages)
            print(f"(a) bare paho QoS1, window 100:          {a:10.0f} msg/s")
            serial, conc = asyncio.run(append_rates(base / "s1", 20_000, args.producers))
            print(f"(b) outbox append, one at a time:        {serial:10.0f} msg/s (durable)")
            print(f"(b) outbox append, {args.producers} producers:         {conc:10.0f} msg/s")
            c = asyncio.run(drain(base / "s2", broker, args.messages))
            print(f"(c) agent drains {args.messages} backlog:       {c:10.0f} msg/s")
            print(f"    ratio (c)/(a):                       {c / a:10.2f}")
            rss, cpu = idle(base / "s3", broker.port, args.idle_seconds)
            print(f"(d) idle agent RSS:                      {rss:10.1f} MB")
            print(f"(d) idle agent CPU:                      {cpu:10.2f} % of a core")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
