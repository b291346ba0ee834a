"""`ops import-checkpoints`: CSV, GeoJSON, KML or KMZ points -> a checked tasks body (WGS-84)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.paths import expand
from agent.errors import ConfigError
from agent.ops import checkpoints, documents, importcheck, kml, mapsource, output
from agent.ops.datum import DATUMS

DAY_MS = 86_400_000


FORMATS = ("geojson", "csv", "kml", "kmz")


def sniff_format(path: Path, data: bytes) -> str:
    """By the file name, else by the content: a zip is KMZ, `<` KML, `{` GeoJSON, else CSV."""
    by_name = {
        ".csv": "csv",
        ".txt": "csv",
        ".kml": "kml",
        ".kmz": "kmz",
        ".geojson": "geojson",
        ".json": "geojson",
    }
    if path.suffix.lower() in by_name:
        return by_name[path.suffix.lower()]
    if data.startswith(b"PK\x03\x04"):
        return "kmz"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "kml" if head == b"<" else "geojson" if head == b"{" else "csv"


def read_points(
    path: Path, data: bytes, fmt: str, defaults: checkpoints.Defaults
) -> tuple[list[checkpoints.Imported], str]:
    """The points of a file, and the text that may name its map (file name, header, KML head)."""
    if fmt in ("kml", "kmz"):
        xml = kml.kml_of_kmz(data) if fmt == "kmz" else data
        head = xml[: xml.find(b"<Placemark")] if b"<Placemark" in xml else xml[:2000]
        return kml.from_kml(xml, defaults), f"{path.name}\n{head.decode('utf-8', 'replace')}"
    text = checkpoints.decode(data, str(path))
    if fmt == "geojson":
        return checkpoints.from_geojson(text, defaults), f"{path.name}\n{text[:200]}"
    return checkpoints.from_csv(text, defaults), f"{path.name}\n{text.partition(chr(10))[0]}"


def cmd_import(args: argparse.Namespace, read_data: Callable[[Path], Any]) -> int:
    """import-checkpoints: a source file -> a checked tasks body in WGS-84, with warnings."""
    o = output.make(args)
    path = expand(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    fmt = args.format or sniff_format(path, data)
    defaults = checkpoints.Defaults(args.radius, args.dwell, args.photo)
    points, hint_text = read_points(path, data, fmt, defaults)
    for text_ in mapsource.warnings(points, args.datum, hint_text):
        o.warn(text_)
    points = mapsource.convert(points, args.datum or "wgs84")
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


def add_import_flags(p: argparse.ArgumentParser) -> None:
    """The source-file flags of import-checkpoints (format and map datum)."""
    p.add_argument(
        "--format", choices=FORMATS, help="default: from the file name, else the content"
    )
    p.add_argument(
        "--datum",
        choices=DATUMS,
        help="the map the points were picked on: wgs84 (GPS, Google Earth, OSM), gcj02 (Amap, "
        "Tencent), bd09 (Baidu); converted to WGS-84. Not given: WGS-84, with a warning for "
        "points in China",
    )
