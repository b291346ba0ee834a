"""Pure import of checkpoints (GeoJSON or CSV) into a §6 tasks body, checked as on a device."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigError
from agent.patrol.core.schema import parse_tasks_body

CSV_COLUMNS = ("id", "name", "lat", "lon", "radius_m", "dwell_s", "tags", "photo")
_REQUIRED = ("id", "lat", "lon")
_TRUE = {"true", "yes", "y", "1", "是", "需要"}
_FALSE = {"false", "no", "n", "0", "", "否", "不需要"}
# Column names as Chinese spreadsheets and map exports (Amap, Baidu, Excel) write them.
HEADER_ALIASES = {
    "编号": "id",
    "点位编号": "id",
    "巡查点编号": "id",
    "序号": "id",
    "名称": "name",
    "名字": "name",
    "点位名称": "name",
    "巡查点": "name",
    "巡查点名称": "name",
    "地点": "name",
    "纬度": "lat",
    "latitude": "lat",
    "经度": "lon",
    "lng": "lon",
    "longitude": "lon",
    "半径": "radius_m",
    "radius": "radius_m",
    "停留": "dwell_s",
    "停留时间": "dwell_s",
    "驻留时间": "dwell_s",
    "dwell": "dwell_s",
    "标签": "tags",
    "nfc": "tags",
    "nfc标签": "tags",
    "拍照": "photo",
    "照片": "photo",
}
_UNIT = re.compile(r"\s*[(（\[【].*?[)）\]】]\s*$")  # 半径(米), 停留时间（秒）, radius [m]
_TAG_SPLIT = re.compile(r"[;,|\s]+")
_DELIMITERS = ",;\t"
_PATH = re.compile(r"^tasks\[(\d+)\]\.checkpoints\[(\d+)\](.*)$")


@dataclass(frozen=True, slots=True)
class Defaults:
    """Values for checkpoints whose source leaves them out."""

    radius_m: float = 25.0
    dwell_s: float = 10.0
    photo: bool = False


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The task the imported checkpoints make up."""

    id: str
    name: str
    staff_id: str | None
    start_ms: int
    end_ms: int
    order: str = "any"


@dataclass(frozen=True, slots=True)
class Imported:
    """One checkpoint and where it came from (`feature 3`, `line 7`), for error messages."""

    where: str
    checkpoint: dict[str, Any]


def _number(value: object, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError([(where, f"{field} must be a number, not {value!r}")])
    if not math.isfinite(value):
        raise ConfigError([(where, f"{field} must be finite")])
    return float(value)


def _text_number(value: str, where: str, field: str) -> float:
    text = value.strip()
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # decimal comma, as semicolon CSV exports write numbers
    try:
        number = float(text)
    except ValueError:
        raise ConfigError([(where, f"{field} must be a number, not {value!r}")]) from None
    return _number(number, where, field)


def _tags(value: object, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        # Hex UIDs hold none of these, so any of them can separate tags.
        items: list[object] = [t for t in _TAG_SPLIT.split(value) if t]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ConfigError([(where, "tags must be a list or text separated by ';'")])
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError([(where, f"tag {item!r} must be text (hex UID)")])
        out.append(item.strip().upper())
    return out


def _photo(value: object, where: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        text = value.strip().lower()
        return default if text == "" else text in _TRUE
    raise ConfigError([(where, f"photo must be true/false, not {value!r}")])


def from_geojson(text: str, defaults: Defaults = Defaults()) -> list[Imported]:
    """A FeatureCollection of Point features -> checkpoints (properties name the fields)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError([("geojson", f"not JSON: {exc}")]) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ConfigError([("geojson", "must be a FeatureCollection")])
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise ConfigError([("geojson", "has no features")])
    out: list[Imported] = []
    for i, feature in enumerate(features):
        where = f"feature {i}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise ConfigError([(where, "is not a GeoJSON Feature")])
        geom = feature.get("geometry")
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            raise ConfigError([(where, "geometry must be a Point")])
        coords = geom.get("coordinates")
        if not isinstance(coords, list) or len(coords) not in (2, 3):
            raise ConfigError([(where, "Point coordinates must be [lon, lat] or [lon, lat, alt]")])
        # Other properties (colour, notes) are common in GIS exports; they are left out.
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raise ConfigError([(where, "properties must be an object")])
        ident = props.get("id", feature.get("id"))
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if not isinstance(ident, str) or not ident:
            raise ConfigError([(where, "needs an id (properties.id or the feature id)")])
        name = props.get("name", ident)
        if not isinstance(name, str):
            raise ConfigError([(where, "name must be text")])
        radius = props.get("radius_m", defaults.radius_m)
        dwell = props.get("dwell_s", defaults.dwell_s)
        cp = {
            "id": ident,
            "name": name,
            # GeoJSON is [lon, lat] (RFC 7946); the task wants lat and lon by name.
            "lat": _number(coords[1], where, "latitude"),
            "lon": _number(coords[0], where, "longitude"),
            "radius_m": _number(radius, where, "radius_m"),
            "dwell_s": _number(dwell, where, "dwell_s"),
            "tags": _tags(props.get("tags"), where),
            "photo": _photo(props.get("photo"), where, defaults.photo),
        }
        out.append(Imported(where, cp))
    return out


def checkpoint_from(
    where: str,
    ident: str,
    name: str,
    lat: str,
    lon: str,
    fields: dict[str, str],
    defaults: Defaults,
) -> Imported:
    """A checkpoint from text cells (CSV, KML); empty optional cells take the defaults."""
    radius, dwell = fields.get("radius_m", ""), fields.get("dwell_s", "")
    cp = {
        "id": ident,
        "name": name or ident,
        "lat": _text_number(lat, where, "lat"),
        "lon": _text_number(lon, where, "lon"),
        "radius_m": _text_number(radius, where, "radius_m") if radius else defaults.radius_m,
        "dwell_s": _text_number(dwell, where, "dwell_s") if dwell else defaults.dwell_s,
        "tags": _tags(fields.get("tags", ""), where),
        "photo": _photo(fields.get("photo", ""), where, defaults.photo),
    }
    return Imported(where, cp)


def header_key(cell: str) -> str:
    """A header cell -> its column name: trimmed, lower case, unit in brackets dropped, aliased."""
    text = _UNIT.sub("", cell.strip().lower())
    return HEADER_ALIASES.get(text, text)


def decode(data: bytes, where: str) -> str:
    """File bytes -> text: UTF-8 (with or without BOM), else GB18030 (GBK is a subset of it:
    what Chinese Excel and WPS write when saving "CSV"), else a clear error naming the byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" is UTF-16
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ConfigError([(where, f"broken UTF-16 text: {exc}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pos = utf8_error.start
        raise ConfigError(
            [
                (
                    where,
                    f"neither UTF-8 nor GBK/GB18030 text (byte {pos}: {data[pos : pos + 4]!r}); "
                    'save it as "CSV UTF-8" in Excel',
                )
            ]
        ) from None


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """Comma, semicolon or tab separated: sniffed from the first lines (Excel in many locales
    writes `;`); a file too small to tell is read as comma separated."""
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return csv.excel


def from_csv(text: str, defaults: Defaults = Defaults()) -> list[Imported]:
    """CSV with a header of id,name,lat,lon,radius_m,dwell_s,tags,photo; `,` `;` or tab.

    Chinese headers (名称, 经度, 纬度, 半径(米) ... see `HEADER_ALIASES`) name the same columns;
    without an id column, the name is the checkpoint's id.
    """
    text = text.lstrip("\ufeff")
    reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
    header = [header_key(h) for h in (reader.fieldnames or [])]
    if "id" not in header and "name" in header:
        header = ["id" if h == "name" else h for h in header]  # 名称 is then the id and the name
    if not header:
        raise ConfigError([("line 1", "no header row")])
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown:
        raise ConfigError(
            [
                (
                    "line 1",
                    f"unknown columns {unknown}; known: {', '.join(CSV_COLUMNS)} "
                    "(or 编号, 名称, 纬度, 经度, 半径, 停留时间, 标签, 拍照)",
                )
            ]
        )
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ConfigError([("line 1", f"missing columns {missing}")])
    reader.fieldnames = header
    out: list[Imported] = []
    for row in reader:
        where = f"line {reader.line_num}"
        if None in row:
            raise ConfigError([(where, "more fields than the header has")])
        cells = {k: (v or "").strip() for k, v in row.items()}
        if not any(cells.values()):
            continue  # a blank line
        if not cells["id"]:
            raise ConfigError([(where, "id is empty")])
        name = cells.get("name", "")
        out.append(
            checkpoint_from(where, cells["id"], name, cells["lat"], cells["lon"], cells, defaults)
        )
    if not out:
        raise ConfigError([("csv", "has no checkpoint rows")])
    return out


def _relabel(
    problems: Sequence[tuple[str, str]], index: int, points: Sequence[Imported]
) -> list[tuple[str, str]]:
    # Name the source feature/line, not the key path inside the generated body.
    out: list[tuple[str, str]] = []
    for path, reason in problems:
        m = _PATH.match(path)
        if m is not None and int(m.group(1)) == index and int(m.group(2)) < len(points):
            field = m.group(3).lstrip(".") or "checkpoint"
            out.append((points[int(m.group(2))].where, f"{field}: {reason}"))
        else:
            out.append((path, reason))
    return out


def tasks_body(
    spec: TaskSpec, points: Sequence[Imported], existing: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A tasks body: `existing` tasks (if any) with `spec` added or replaced by id; validated."""
    task = {
        "id": spec.id,
        "name": spec.name,
        "staff_id": spec.staff_id,
        "start_ms": spec.start_ms,
        "end_ms": spec.end_ms,
        "order": spec.order,
        "checkpoints": [p.checkpoint for p in points],
    }
    tasks: list[Any] = []
    if existing is not None:
        old = existing.get("tasks")
        if not isinstance(old, list):
            raise ConfigError([("existing tasks", "must be an object with a tasks list")])
        tasks = [t for t in old if not (isinstance(t, dict) and t.get("id") == spec.id)]
    index = len(tasks)
    body = {"tasks": [*tasks, task]}
    try:
        parse_tasks_body(body)
    except ConfigError as exc:
        raise ConfigError(_relabel(exc.problems, index, points)) from None
    return body
