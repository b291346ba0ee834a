"""Benchmark: the outbox and the drain beside their ceilings, and an idle agent's RSS/CPU.

Run: .venv/bin/python bench/bench_sync.py [--runs 3] [--rounds 12] [--pairs 3]
     [--messages 30000] [--idle-seconds 30]

Each run measures, in the same temporary folder (same file system):
- ceilings: plain sqlite3 and aiosqlite inserting a row of a check-in's size, one row per
  commit and 100 rows per commit (WAL, synchronous=FULL, the outbox's own settings), in
  rounds interleaved with the outbox's durable appends one at a time and from 100
  concurrent producers;
- a bare paho QoS 1 publisher (window 100) and the agent draining a backlog, alternately, on
  a Mosquitto whose Receive Maximum lets both have 100 in flight (its default of 20 would
  hold the agent, which obeys it, to 18 while bare paho ignores it);
and prints each figure with the median of its per-round ratios to its ceiling (and their
range), then the spread of those medians over the runs; and (e) the floors no outbox code
removes (bench/sync_floors.py) with the best ratios they leave.
Prints figures; asserts nothing. The machine is shared: compare ratios, not absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import paho.mqtt.client as paho
import sync_floors  # bench/ (the script's folder)
from paho.mqtt.enums import CallbackAPIVersion

from agent.clock import SystemClock
from agent.config.model import parse
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
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


async def appends(base: Path, rounds: int, producers: int) -> dict[str, list[float]]:
    """(b) rows/s of the outbox and of its ceilings, per round, in interleaved rounds.

    Each round runs every case once (250 single-row commits; 2,500 rows as 100-row commits
    or from `producers` producers), so load from other users of the machine falls on a case
    and its ceiling alike.
    """
    sq = ceiling_db(base / "sqlite3.db")
    clock = SystemClock()
    async with (
        aiosqlite.connect(base / "aiosqlite.db", isolation_level=None) as aio,
        Outbox(base / "outbox", "pd-bench", stamp=clock.stamp, budget_bytes=1 << 34) as ob,
    ):
        for p in (*PRAGMAS, CEILING_SQL):
            await aio.execute(p)
        cases = _append_cases(sq, aio, ob, producers)
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (n, case) in cases.items():
                t0 = time.perf_counter()
                await case()
                rates[name].append(n / (time.perf_counter() - t0))
    sq.close()
    return rates


def _append_cases(
    sq: sqlite3.Connection, aio: aiosqlite.Connection, ob: Outbox, producers: int
) -> dict[str, tuple[int, Callable[[], Awaitable[None]]]]:
    """Each case of `appends`: (rows it writes, the coroutine function that writes them)."""
    row = [("pd-bench/evt/checkin", b"x" * checkin_size())]
    per = 2500 // producers

    async def serial() -> None:
        for _ in range(250):
            await ob.append("checkin", BODY)

    async def produce() -> None:
        for _ in range(per):
            await ob.append("checkin", BODY)

    async def concurrent() -> None:
        await asyncio.gather(*(produce() for _ in range(producers)))

    async def sq1() -> None:
        sqlite_commits(sq, 250, row)

    async def sq100() -> None:
        sqlite_commits(sq, 25, row * 100)

    async def aio1() -> None:
        await aiosqlite_commits(aio, 250, row)

    async def aio100() -> None:
        await aiosqlite_commits(aio, 25, row * 100)

    return {
        "sqlite3 1/commit": (250, sq1),
        "aiosqlite 1/commit": (250, aio1),
        "outbox one at a time": (250, serial),
        "sqlite3 100/commit": (2500, sq100),
        "aiosqlite 100/commit": (2500, aio100),
        f"outbox {producers} producers": (per * producers, concurrent),
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


def ratios(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median, lowest and highest of the per-round ratios num/den."""
    r = sorted(a / b for a, b in zip(num, den, strict=True))
    return statistics.median(r), r[0], r[-1]


def one_run(base: Path, broker: Broker, args: argparse.Namespace) -> dict[str, float]:
    """Every figure of one run, each printed beside its ceiling; the median ratios."""
    (base / "appends").mkdir(parents=True)
    rates = asyncio.run(appends(base / "appends", args.rounds, args.producers))
    for name, per_round in rates.items():
        print(f"(b) {name:<26} {statistics.median(per_round):10.0f} rows/s (median round)")
    sync_floors.report(
        BODY,
        1e6 / statistics.median(rates["sqlite3 1/commit"]),
        1e6 / statistics.median(rates["sqlite3 100/commit"]),
    )
    paho_rates, drain_rates = [], []
    for i in range(args.pairs):
        paho_rates.append(bare_paho(broker.port, args.messages))
        drain_rates.append(asyncio.run(drain(base / f"drain{i}", broker, args.messages)))
    print(f"(a) bare paho QoS1, window 100  {statistics.median(paho_rates):10.0f} msg/s")
    print(f"(c) agent drains the backlog    {statistics.median(drain_rates):10.0f} msg/s")
    conc = f"outbox {args.producers} producers"
    out = {
        "single writer / sqlite3 1/commit": ratios(
            rates["outbox one at a time"], rates["sqlite3 1/commit"]
        ),
        "single writer / aiosqlite 1/commit": ratios(
            rates["outbox one at a time"], rates["aiosqlite 1/commit"]
        ),
        f"{args.producers} producers / sqlite3 100/commit": ratios(
            rates[conc], rates["sqlite3 100/commit"]
        ),
        "drain / bare paho": ratios(drain_rates, paho_rates),
    }
    for name, (med, lo, hi) in out.items():
        print(f"    ratio {name:<40} {med:6.2f} (rounds {lo:.2f} - {hi:.2f})")
    return {name: r[0] for name, r in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=12, help="interleaved rounds per run")
    ap.add_argument("--pairs", type=int, default=3, help="paho/drain pairs per run")
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--producers", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        # Receive Maximum 102: the agent's window is 100 (2 kept for birth and `reported`).
        broker = Broker(base / "broker", extra_conf="max_inflight_messages 102\n")
        broker.start()
        try:
            runs = []
            for i in range(args.runs):
                print(f"run {i + 1}:")
                runs.append(one_run(base / f"run{i}", broker, args))
            print("spread over the runs (median ratio to the ceiling measured in the same run):")
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
