"""Archive throughput into PostgreSQL with two archivers, beside a bare INSERT ceiling.

Run: .venv/bin/python bench/bench_archive.py [--events 20000] [--archivers 2] [--batch 500]

1. Ceiling: the same event rows inserted straight into the `events` table by one process
   (psycopg executemany, --batch rows per transaction, ON CONFLICT DO NOTHING): what this
   machine's PostgreSQL takes with no MQTT, no parsing and no acknowledgements.
2. Archive: the archivers subscribe once (persistent sessions, shared subscription), stop; the
   events are published into their sessions at the broker; the archivers start again and the
   clock runs from the first committed row to the last (so Python start-up is not counted).
Prints events/s for both and the ratio (aim >= 0.5x and >= 5,000 events/s). Everything runs on
this machine: the broker, PostgreSQL and the archivers share its cores (see docs/central.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from agent.demo.broker import Broker
from agent.ops.archive.records import EventRow, rows_for
from agent.ops.archive.store import INSERTS, SqlStore
from tests.kits.archive import ArchiverProc, Publisher, envelope
from tests.kits.postgres import Postgres


def make_events(n: int, devices: int = 500) -> list[tuple[str, bytes]]:
    """n incident events spread over `devices` devices (~250 bytes each, like a real one)."""
    out = []
    for i in range(n):
        dev = f"pd-{i % devices:04d}"
        body = {"category": "parking", "level": 3, "note": f"event {i}", "photos": []}
        out.append(
            (f"grid/v1/{dev}/evt/incident", envelope(dev, "incident", i // devices + 1, body))
        )
    return out


def ceiling(pg: Postgres, msgs: list[tuple[str, bytes]], batch: int) -> float:
    """Events/s of bare batched INSERTs of the same rows."""
    SqlStore(pg.dsn).close()  # the tables
    rows = [r for t, p in msgs for r in rows_for(t, p, 0)]
    sql = INSERTS[EventRow].replace("?", "%s")
    with psycopg.connect(pg.dsn) as c:
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            with c.cursor() as cur:
                cur.executemany(
                    sql, [tuple(getattr(r, f) for f in r.__slots__) for r in rows[i : i + batch]]
                )
            c.commit()
        secs = time.perf_counter() - start
        c.execute("TRUNCATE events")
        c.commit()
    return len(rows) / secs


def count(pg: Postgres) -> int:
    with psycopg.connect(pg.dsn) as c:
        return int(c.execute("SELECT count(*) FROM events").fetchone()[0])  # type: ignore[index]


def archive_rate(
    pg: Postgres, work: Path, msgs: list[tuple[str, bytes]], k: int, batch: int
) -> float:
    broker = Broker(work / "broker", extra_conf="max_inflight_messages 0\n")
    broker.start()
    procs = [
        ArchiverProc(
            ["--host", broker.host, "--port", str(broker.port), "--dsn", pg.dsn,
             "--media-dir", str(work / "media"), "--name", f"bench{i}", "--batch", str(batch)],
            work / f"archiver{i}.log",
        )
        for i in range(k)
    ]  # fmt: skip
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.wait_ready()
            p.stop()
        pub = Publisher(broker.host, broker.port)
        pub.publish_all(msgs, timeout=600)
        pub.close()
        for p in procs:
            p.start()
        while (first := count(pg)) == 0:
            time.sleep(0.01)
        t0 = time.perf_counter()
        while (n := count(pg)) < len(msgs):
            time.sleep(0.05)
        secs = time.perf_counter() - t0
        shares = []
        for p in procs:
            p.stop()
            shares.append(p.archived())
        print(f"  archived per archiver (this run's share): {shares}")
        assert n == len(msgs), (n, len(msgs))
        return (n - first) / secs
    finally:
        for p in procs:
            p.kill()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--archivers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    msgs = make_events(args.events)
    pg = Postgres()
    try:
        pg.init()
        with tempfile.TemporaryDirectory() as tmp:
            base = ceiling(pg, msgs, args.batch)
            print(f"ceiling: bare INSERT, batches of {args.batch}: {base:,.0f} events/s")
            rate = archive_rate(pg, Path(tmp), msgs, args.archivers, args.batch)
    finally:
        pg.remove()
    print(
        f"archive: {args.archivers} archivers, MQTT 5 shared subscription, ack after commit: "
        f"{rate:,.0f} events/s = {rate / base:.2f}x the ceiling (aim >= 0.5x, >= 5,000/s)"
    )
    district = 2200 * 2 / 60 + 300 * 1 / 60
    print(
        f"district average (2,200 cameras + 300 patrol devices, see docs/central.md): "
        f"~{district:,.0f} events/s -> headroom {rate / district:,.0f}x"
    )


if __name__ == "__main__":
    main()
