"""Benchmark: the outbox and the drain beside their ceilings, and an idle agent's RSS/CPU.

Run: .venv/bin/python bench/bench_sync.py [--runs 3] [--rounds 5] [--messages 100000]
     [--idle-seconds 30]

Each run measures, in the same temporary folder (same file system):
- ceilings: plain sqlite3 and aiosqlite inserting a row of a check-in's size, one row per
  commit and 100 rows per commit (WAL, synchronous=FULL, the outbox's own settings), in
  rounds interleaved with the outbox's durable appends one at a time and from 100
  concurrent producers;
- a bare paho QoS 1 publisher (window 100), then the agent draining a backlog;
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
from collections.abc import Awaitable, Callable
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


def ceiling_db(path: Path) -> sqlite3.Connection:
    """A fresh file with a one-table schema and the outbox's durability settings."""
    conn = sqlite3.connect(path, isolation_level=None)
    for p in (*PRAGMAS, CEILING_SQL):
        conn.execute(p)
    return conn


def sqlite_commits(conn: sqlite3.Connection, commits: int, rows: list[tuple[str, bytes]]) -> None:
    """`commits` durable commits of `rows` each, plain sqlite3 on this thread."""
    for _ in range(commits):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(CEILING_INSERT, rows)
        conn.execute("COMMIT")


async def aiosqlite_commits(
    conn: aiosqlite.Connection, commits: int, rows: list[tuple[str, bytes]]
) -> None:
    """The same through aiosqlite (its own thread, one hop per statement)."""
    for _ in range(commits):
        await conn.execute("BEGIN IMMEDIATE")
        await conn.executemany(CEILING_INSERT, rows)
        await conn.execute("COMMIT")


async def appends(base: Path, rounds: int, producers: int) -> dict[str, float]:
    """(b) rows/s of the outbox and of its ceilings, measured in interleaved rounds.

    Each round runs every case once (1,000 single-row commits; 10,000 rows as 100-row
    commits or from `producers` producers), so load from other users of the machine falls on
    all of them alike; a case's rate is its rows over its time summed over the rounds.
    """
    row = [("pd-bench/evt/checkin", b"x" * checkin_size())]
    sq = ceiling_db(base / "sqlite3.db")
    rows: dict[str, int] = {}
    secs: dict[str, float] = {}
    clock = SystemClock()
    async with (
        aiosqlite.connect(base / "aiosqlite.db", isolation_level=None) as aio,
        Outbox(base / "outbox", "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob,
    ):
        for p in (*PRAGMAS, CEILING_SQL):
            await aio.execute(p)

        async def serial() -> None:
            for _ in range(1000):
                await ob.append("checkin", BODY)

        async def produce() -> None:
            for _ in range(10_000 // producers):
                await ob.append("checkin", BODY)

        async def concurrent() -> None:
            await asyncio.gather(*(produce() for _ in range(producers)))

        async def sq1() -> None:
            sqlite_commits(sq, 1000, row)

        async def sq100() -> None:
            sqlite_commits(sq, 100, row * 100)

        async def aio1() -> None:
            await aiosqlite_commits(aio, 1000, row)

        async def aio100() -> None:
            await aiosqlite_commits(aio, 100, row * 100)

        cases: dict[str, tuple[int, Callable[[], Awaitable[None]]]] = {
            "sqlite3 1/commit": (1000, sq1),
            "aiosqlite 1/commit": (1000, aio1),
            "outbox one at a time": (1000, serial),
            "sqlite3 100/commit": (10_000, sq100),
            "aiosqlite 100/commit": (10_000, aio100),
            f"outbox {producers} producers": (10_000 // producers * producers, concurrent),
        }
        for _ in range(rounds):
            for name, (n, case) in cases.items():
                t0 = time.perf_counter()
                await case()
                secs[name] = secs.get(name, 0.0) + time.perf_counter() - t0
                rows[name] = rows.get(name, 0) + n
    sq.close()
    return {name: rows[name] / secs[name] for name in cases}


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
    (base / "appends").mkdir(parents=True)
    rates = asyncio.run(appends(base / "appends", args.rounds, args.producers))
    for name, rate in rates.items():
        print(f"(b) {name:<26} {rate:10.0f} rows/s")
    a = bare_paho(broker.port, args.messages)
    c = asyncio.run(drain(base / "drain", broker, args.messages))
    print(f"(a) bare paho QoS1, window 100  {a:10.0f} msg/s")
    print(f"(c) agent drains the backlog    {c:10.0f} msg/s ({args.messages} messages)")
    conc = f"outbox {args.producers} producers"
    out = {
        "single writer / sqlite3 1/commit": rates["outbox one at a time"]
        / rates["sqlite3 1/commit"],
        f"{args.producers} producers / sqlite3 100/commit": rates[conc]
        / rates["sqlite3 100/commit"],
        "drain / bare paho": c / a,
    }
    for name, ratio in out.items():
        print(f"    ratio {name:<40} {ratio:6.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per run")
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
