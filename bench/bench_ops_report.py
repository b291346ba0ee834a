"""The operations centre's readers at a district's scale: the patrol report and the alert rules.

Run: .venv/bin/python bench/bench_ops_report.py [--devices 300]
Prints figures only; it asserts nothing. The report's day: every patrol device walks two tasks
of 20 checkpoints (about 12,000 check-ins and patrol events for 300 devices) in a SQLite
archive. Each figure stands beside its baseline measured in the same run: the report beside a
bare read of the same rows (SELECT + json.loads), the alert rules beside json.loads alone of
the same messages (the least any consumer of the stream pays).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.ops.alerts.rules import Rules, State, step  # noqa: E402
from agent.ops.alerts.service import incoming  # noqa: E402
from agent.ops.report import render  # noqa: E402
from agent.ops.report.patrol import Day, patrol_report  # noqa: E402
from agent.ops.report.reader import ArchiveReader  # noqa: E402
from agent.patrol.core.schema import parse_tasks_body  # noqa: E402
from tests.kits.report_archive import FakeArchive, checkin_body, patrol_body  # noqa: E402

DAY = Day.of(date(2026, 12, 7))
CPS = 20


def tasks_body(devices: int) -> dict[str, object]:
    tasks = []
    for d in range(devices):
        for t in range(2):
            cps = [
                {
                    "id": f"c{i}",
                    "name": f"点{i}",
                    "lat": 34.7 + i * 1e-4,
                    "lon": 113.6 + d * 1e-4,
                    "radius_m": 25.0,
                    "dwell_s": 10.0,
                    "tags": [],
                    "photo": False,
                }
                for i in range(CPS)
            ]
            start = DAY.start_ms + (8 + 5 * t) * 3_600_000
            tasks.append(
                {
                    "id": f"t-{d}-{t}",
                    "name": f"任务{d}-{t}",
                    "staff_id": f"w-{d}",
                    "start_ms": start,
                    "end_ms": start + 4 * 3_600_000,
                    "order": "any",
                    "checkpoints": cps,
                }
            )
    return {"tasks": tasks}


def fill(devices: int, path: Path) -> int:
    arch = FakeArchive()
    for d in range(devices):
        dev = f"pd-{d:04d}"
        arch.birth(dev, DAY.start_ms, ["zz", f"zz.g{d % 12}"])
        for t in range(2):
            task, at = f"t-{d}-{t}", DAY.start_ms + (8 + 5 * t) * 3_600_000
            arch.add(dev, "patrol", at, patrol_body(task, "started", None, 0, CPS))
            for i in range(CPS - (d % 3)):  # some devices miss a checkpoint or two
                pos = (34.7 + i * 1e-4, 113.6 + d * 1e-4)
                arch.add(
                    dev, "checkin", at + i * 600_000, checkin_body(task, f"c{i}", f"w-{d}", pos)
                )
    arch.write(path)
    return len(arch.rows)


def bare_read(path: Path) -> int:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT dev, payload FROM events WHERE ts >= ? AND ts < ?", (DAY.start_ms, DAY.end_ms)
        ).fetchall()
    return sum(len(json.loads(p)["body"]) for _, p in rows)


def report(path: Path, tasks: object) -> int:
    with ArchiveReader(path) as reader:
        events = reader.events(("checkin", "patrol"), DAY.start_ms, DAY.end_ms)
        zones = reader.zones()
    out = patrol_report(tasks, events, zones, DAY, DAY.end_ms)  # type: ignore[arg-type]
    render.to_xlsx(out, "zh")
    return len(out.rows)


def timed(fn: object, *args: object) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - t0, result


def alerts_rate(devices: int) -> tuple[float, float]:
    msgs = []
    for d in range(devices):
        status = {"v": 1, "ts": d, "outbox": {"depth": d % 2000}, "gps": {"fix": "3d"}}
        msgs.append((f"grid/v1/pd-{d:04d}/status", json.dumps(status).encode()))
        alarm = {"v": 1, "kind": "alarm", "id": f"a{d}", "ts": d, "body": {"type": "power"}}
        msgs.append((f"grid/v1/pd-{d:04d}/evt/alarm", json.dumps(alarm).encode()))
    t_bare, _ = timed(lambda: [json.loads(p) for _, p in msgs])
    rules = Rules(backlog_over=1000)

    def judge() -> None:
        state = State()
        for topic, payload in msgs:
            inc = incoming(topic, payload)
            if inc is not None:
                state, _ = step(rules, state, inc, 0)

    t_rules, _ = timed(judge)
    return len(msgs) / t_rules, len(msgs) / t_bare


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=300)
    args = ap.parse_args()
    print(f"{platform.machine()} {platform.python_version()}, {args.devices} patrol devices")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "archive.db"
        n = fill(args.devices, path)
        tasks = parse_tasks_body(tasks_body(args.devices))
        t_bare, _ = timed(bare_read, path)
        t_report, rows = timed(report, path, tasks)
    print(
        f"report patrol (read, report, XLSX): {n} events -> {rows} rows in {t_report:.2f} s; "
        f"bare SELECT + json.loads of the same rows {t_bare:.2f} s ({t_report / t_bare:.1f}x)"
    )
    rate, bare = alerts_rate(args.devices * 10)
    print(
        f"alert rules: {rate:,.0f} messages/s; json.loads alone {bare:,.0f}/s "
        f"({rate / bare:.2f}x of it)"
    )


if __name__ == "__main__":
    main()
