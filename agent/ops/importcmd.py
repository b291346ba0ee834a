"""`ops import-checkpoints`: CSV, GeoJSON or KML points -> a checked tasks body, with warnings."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.ops import checkpoints, documents, importcheck, kml, output
from agent.paths import expand

DAY_MS = 86_400_000


def sniff_format(path: Path, text: str) -> str:
    """By the file name, else by the content: `<` is KML, `{` GeoJSON, anything else CSV."""
    by_name = {
        ".csv": "csv",
        ".txt": "csv",
        ".kml": "kml",
        ".geojson": "geojson",
        ".json": "geojson",
    }
    if path.suffix.lower() in by_name:
        return by_name[path.suffix.lower()]
    head = text.lstrip("\ufeff \t\r\n")[:1]
    return "kml" if head == "<" else "geojson" if head == "{" else "csv"


def cmd_import(args: argparse.Namespace, read_data: Callable[[Path], Any]) -> int:
    """import-checkpoints: a source file -> a checked tasks body, with warnings."""
    o = output.make(args)
    path = expand(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    fmt = args.format or sniff_format(path, text)
    defaults = checkpoints.Defaults(args.radius, args.dwell, args.photo)
    readers = {"csv": checkpoints.from_csv, "geojson": checkpoints.from_geojson}
    points = (readers.get(fmt) or kml.from_kml)(text, defaults)
    now = int(time.time() * 1000)
    start = documents.parse_time_ms(args.start, now) if args.start else now
    end = documents.parse_time_ms(args.end, start) if args.end else start + DAY_MS
    spec = checkpoints.TaskSpec(args.task_id, args.task_name, args.staff, start, end, args.order)
    for text_ in importcheck.warnings(spec, points, now):
        o.warn(text_)
    existing = read_data(expand(args.into)) if args.into else None
    if existing is not None and not isinstance(existing, dict):
        raise ConfigError([(args.into, "must hold a tasks body object")])
    body = checkpoints.tasks_body(spec, points, existing)
    text_out = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if args.out:
        expand(args.out).write_text(text_out, encoding="utf-8")
        text_ = f"{len(points)} checkpoints -> task {args.task_id} in {args.out}"
        if o.json:
            o.record({"event": "imported", "task_id": args.task_id, "checkpoints": len(points)})
        else:
            o.note(text_)  # stderr, as when the body itself goes to stdout
    elif o.json:
        o.record(body)
    else:
        sys.stdout.write(text_out)
    return 0
