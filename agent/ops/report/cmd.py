"""`edge-agent ops report patrol`: the day's patrol report from the archive, as files."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from agent import lang
from agent.config.paths import expand
from agent.errors import ConfigError
from agent.ops.report import render
from agent.ops.report.patrol import Day, patrol_report
from agent.ops.report.reader import ArchiveReader, WatchArchiveReader
from agent.patrol.core.schema import parse_tasks_body

Handler = Callable[[argparse.Namespace], int]
# Where `ops archive` writes by default (its --db).
DEFAULT_DB = "/var/lib/edge-archive/archive.db"
# A check-in or patrol event of the day may be stamped a little late (clock not yet right).
_SLACK_MS = 86_400_000


def _date(text: str) -> date | int:
    """YYYY-MM-DD, or today/yesterday (as a day offset, resolved in --tz when run)."""
    relative = {"today": 0, "yesterday": -1, "今天": 0, "昨天": -1}
    if text.lower() in relative:
        return relative[text.lower()]
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a date as YYYY-MM-DD, today or yesterday") from None


def _day(value: date | int, tz: timezone, now_ms: int) -> date:
    if isinstance(value, date):
        return value
    return datetime.fromtimestamp(now_ms / 1000, tz).date() + timedelta(days=value)


def _offset(text: str) -> timezone:
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text.strip())
    if m is None or int(m.group(2)) > 14 or int(m.group(3)) > 59:
        raise argparse.ArgumentTypeError("a UTC offset such as +08:00")
    sign = -1 if m.group(1) == "-" else 1
    return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))


def _tasks(path: Path) -> Any:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError([(str(path), f"cannot read a tasks body: {exc}")]) from None
    if isinstance(body, dict) and isinstance(body.get("body"), dict):
        body = body["body"]  # a document payload ({"typ":"tasks", ..., "body": {...}})
    return parse_tasks_body(body)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    return suffix if suffix in render.WRITERS else "csv"


def cmd_patrol(args: argparse.Namespace) -> int:
    """Read the day's events and the tasks, write the report file (or stdout)."""
    tasks = _tasks(expand(args.tasks))
    now = int(time.time() * 1000)
    day = Day.of(_day(args.date, args.tz, now), args.tz)
    reader = (
        WatchArchiveReader(expand(args.archive)) if args.archive else ArchiveReader(expand(args.db))
    )
    with reader:
        events = reader.events(("checkin", "patrol"), day.start_ms, day.end_ms + _SLACK_MS)
        zones = reader.zones()
    report = patrol_report(tasks, events, zones, day, now, args.zone)
    if args.json:  # one JSON object per row on stdout, for scripts (times in ms, as in §3)
        for row in report.rows:
            sys.stdout.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
        return 0
    which = lang.pick(args.lang, os.environ)
    fmt = _format(args)
    data = render.WRITERS[fmt](report, which, args.tz)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.out:
        expand(args.out).write_bytes(data)
        err.print(f"{len(report.rows)} rows ({fmt}) -> {args.out}", markup=False)
    elif fmt == "xlsx":
        raise ConfigError([("--out", "XLSX is a binary file: give --out FILE.xlsx")])
    else:
        sys.stdout.buffer.write(data)
    return 0


def register(sub: Any, guard: Callable[[Handler], Handler]) -> None:
    """Add `report patrol` to the `ops` sub-commands."""
    what = "reports from the archive (ops archive)"
    report = sub.add_parser("report", help=what, description=what)
    kinds = report.add_subparsers(dest="report_kind", required=True, metavar="REPORT")
    what = "the day's patrol report: per grid, task and worker (CSV, XLSX, GeoJSON, KML)"
    p = kinds.add_parser("patrol", help=what, description=what)
    p.set_defaults(func=guard(cmd_patrol))
    p.add_argument(
        "--date", required=True, type=_date, help="the local day: YYYY-MM-DD, today, yesterday"
    )
    p.add_argument("--zone", help="only devices in this zone (or a zone inside it)")
    p.add_argument("--tasks", required=True, help="the tasks body pushed (JSON)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--db", default=DEFAULT_DB, help=f"archive SQLite (default {DEFAULT_DB})")
    src.add_argument("--archive", metavar="DIR", help="an ops watch --archive directory instead")
    p.add_argument("--format", choices=tuple(render.WRITERS), help="default: from --out, else csv")
    p.add_argument("--out", help="file to write (default stdout; XLSX needs a file)")
    p.add_argument("--lang", choices=("zh", "en"), help="headers: zh (default) or en")
    p.add_argument("--json", action="store_true", help="JSON lines on stdout, one per row")
    p.add_argument(
        "--tz",
        type=_offset,
        default=timezone(timedelta(hours=8)),
        help="local time offset of the day and the times (default +08:00)",
    )
