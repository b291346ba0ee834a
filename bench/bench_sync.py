"""Benchmark: the outbox and the drain beside their ceilings, and an idle agent's RSS/CPU.

Run: .venv/bin/python bench/bench_sync.py [--runs 3] [--messages 100000] [--idle-seconds 30]

Each run measures, in the same temporary folder (same file system):
- ceilings: plain sqlite3 and aiosqlite inserting a row of a check-in's size, one row per
  commit and 100 rows per commit (WAL, synchronous=FULL, the outbox's own settings);
- the outbox: durable appends one at a time, and from 100 concurrent producers;
- a bare paho QoS 1 publisher (window 100) and the agent draining a backlog;
and prints each figure with its ratio to its ceiling, then the spread over the runs.
Prints figures; asserts nothing. The machine is shared: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.app import Agent
from agent.clock import SystemClock
from agent.config import parse
from agent.localbroker import Broker
from sync import envelope
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


def checkin_size() -> int:
    """Bytes of a check-in envelope with BODY (the ceilings store rows of this size)."""
    stamp = SystemClock().stamp()
    return len(
        envelope.envelope(
            kind="checkin",
            msg_id=envelope.uuid7(stamp.ts),
            dev="pd-bench",
            seq=1,
            stamp=stamp,
            hist=False,
            body=BODY,
        )
    )


CEILING_SQL = "CREATE TABLE t(id INTEGER PRIMARY KEY, topic TEXT, payload BLOB)"
CEILING_INSERT = "INSERT INTO t(topic, payload) VALUES (?, ?)"
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")


def sqlite_rate(path: Path, n: int, per_commit: int, size: int) -> float:
    """Rows/s of plain sqlite3, `per_commit` rows per durable commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    for p in (*PRAGMAS, CEILING_SQL):
        conn.execute(p)
    rows = [("pd-bench/evt/checkin", b"x" * size)] * per_commit
    t0 = time.perf_counter()
    for _ in range(n // per_commit):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(CEILING_INSERT, rows)
        conn.execute("COMMIT")
    rate = n // per_commit * per_commit / (time.perf_counter() - t0)
    conn.close()
    return rate


async def aiosqlite_rate(path: Path, n: int, per_commit: int, size: int) -> float:
    """Rows/s of aiosqlite, `per_commit` rows per durable commit."""
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for p in (*PRAGMAS, CEILING_SQL):
            await conn.execute(p)
        rows = [("pd-bench/evt/checkin", b"x" * size)] * per_commit
        t0 = time.perf_counter()
        for _ in range(n // per_commit):
            await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(CEILING_INSERT, rows)
            await conn.execute("COMMIT")
        return n // per_commit * per_commit / (time.perf_counter() - t0)


def ceilings(base: Path, serial_n: int, batch_n: int) -> dict[str, float]:
    """The four ceilings, each in a fresh file under `base`."""
    size = checkin_size()
    base.mkdir(parents=True, exist_ok=True)
    return {
        "sqlite3 1/commit": sqlite_rate(base / "c1.db", serial_n, 1, size),
        "sqlite3 100/commit": sqlite_rate(base / "c2.db", batch_n, 100, size),
        "aiosqlite 1/commit": asyncio.run(aiosqlite_rate(base / "c3.db", serial_n, 1, size)),
        "aiosqlite 100/commit": asyncio.run(aiosqlite_rate(base / "c4.db", batch_n, 100, size)),
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


async def append_rates(state: Path, n: int, producers: int, k: int) -> tuple[float, float]:
    """(b) durable appends/s one at a time, and with `producers` concurrent producers."""
    clock = SystemClock()
    async with Outbox(state, "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob:
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
    """(c) msg/s for the agent to get an `n`-message backlog PUBACKed by the broker."""
    clock = SystemClock()
    async with Outbox(state, "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob:
        await asyncio.gather(*(ob.append("checkin", BODY) for _ in range(n)))
        backlog = ob.depth
    cfg = parse(config(state, broker.port))
    async with Agent(cfg) as agent:
        while agent.link.session is None:
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        # Until the last PUBACK, as for bare paho (the deletes after it are batched).
        while agent.publisher.acked < backlog:
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


def one_run(base: Path, broker: Broker, args: argparse.Namespace) -> dict[str, float]:
    """Every figure of one run, each printed beside its ceiling."""
    serial_n = 5000
    ceil = ceilings(base / "ceil", serial_n, 20_000)
    for name, rate in ceil.items():
        print(f"    ceiling {name:<22} {rate:10.0f} rows/s")
    serial, conc = asyncio.run(append_rates(base / "s1", 20_000, args.producers, serial_n))
    a = bare_paho(broker.port, args.messages)
    c = asyncio.run(drain(base / "s2", broker, args.messages))
    out = {
        "single writer / sqlite3 1/commit": serial / ceil["sqlite3 1/commit"],
        f"{args.producers} producers / sqlite3 100/commit": conc / ceil["sqlite3 100/commit"],
        "drain / bare paho": c / a,
    }
    print(f"(b) outbox append, one at a time:  {serial:10.0f} msg/s (durable)")
    print(f"(b) outbox append, {args.producers} producers: {conc:10.0f} msg/s")
    print(f"(a) bare paho QoS1, window 100:    {a:10.0f} msg/s")
    print(f"(c) agent drains {args.messages} backlog: {c:10.0f} msg/s")
    for name, ratio in out.items():
        print(f"    ratio {name:<36} {ratio:6.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--producers", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        broker = Broker(base / "broker")
        broker.start()
        try:
            runs = []
            for i in range(args.runs):
                print(f"run {i + 1}:")
                runs.append(one_run(base / f"run{i}", broker, args))
            print("spread over the runs (ratio to the ceiling measured in the same run):")
            for name in runs[0]:
                vals = [r[name] for r in runs]
                print(f"    {name:<42} {min(vals):5.2f} - {max(vals):5.2f}")
            if args.idle_seconds > 0:
                rss, cpu = idle(base / "s3", broker.port, args.idle_seconds)
                print(f"(d) idle agent RSS:                {rss:10.1f} MB")
                print(f"(d) idle agent CPU:                {cpu:10.2f} % of a core")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
