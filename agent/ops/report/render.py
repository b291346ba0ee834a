"""The patrol report as files: CSV (UTF-8 with BOM, for Excel), XLSX, GeoJSON and KML.

Pure: each function returns the file's bytes. Headers are Simplified Chinese by default and
English with lang="en"; times are local ("2026-12-07 08:31:05", +08:00 unless told).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import escape

import xlsxwriter

from agent.lang import Lang
from agent.ops.report.patrol import CHINA_TZ, CheckinMark, CheckpointMark, Report, Row

COLUMNS: dict[Lang, tuple[str, ...]] = {
    "zh": (
        "网格",
        "任务编号",
        "任务名称",
        "巡查员",
        "设备",
        "巡查点总数",
        "已打卡",
        "漏检",
        "迟到",
        "任务完成",
        "任务超时",
        "首次打卡",
        "末次打卡",
        "行走距离(米)",
    ),
    "en": (
        "grid",
        "task id",
        "task",
        "worker",
        "device",
        "checkpoints",
        "checked",
        "missed",
        "late",
        "completed",
        "overdue",
        "first check-in",
        "last check-in",
        "distance (m)",
    ),
}
_YES_NO: dict[Lang, tuple[str, str]] = {"zh": ("是", "否"), "en": ("yes", "no")}
STATUS: dict[Lang, dict[str, str]] = {
    "zh": {"checked": "已打卡", "missed": "漏检", "open": "未到时"},
    "en": {"checked": "checked", "missed": "missed", "open": "open"},
}


def local_time(ms: int | None, tz: timezone = CHINA_TZ) -> str:
    """Epoch ms -> "YYYY-MM-DD HH:MM:SS" in `tz`; '' for none."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


def cells(row: Row, lang: Lang, tz: timezone = CHINA_TZ) -> list[Any]:
    """One row's cells, in COLUMNS order (numbers stay numbers)."""
    yes, no = _YES_NO[lang]
    return [
        row.zone,
        row.task_id,
        row.task_name,
        row.staff,
        row.dev,
        row.total,
        row.checked,
        row.missed,
        row.late,
        yes if row.completed else no,
        yes if row.overdue else no,
        local_time(row.first_ms, tz),
        local_time(row.last_ms, tz),
        row.distance_m,
    ]


def to_csv(report: Report, lang: Lang, tz: timezone = CHINA_TZ) -> bytes:
    """UTF-8 with a BOM and CRLF lines: what Excel opens without an import dialog."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS[lang])
    writer.writerows(cells(r, lang, tz) for r in report.rows)
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(report: Report, lang: Lang, tz: timezone = CHINA_TZ) -> bytes:
    """One sheet, bold header row frozen, columns sized for their text."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf, {"in_memory": True})
    sheet = book.add_worksheet("巡查日报" if lang == "zh" else "patrol")
    bold = book.add_format({"bold": True})
    header = COLUMNS[lang]
    sheet.write_row(0, 0, header, bold)
    for i, row in enumerate(report.rows, start=1):
        sheet.write_row(i, 0, cells(row, lang, tz))
    for col, name in enumerate(header):
        sheet.set_column(col, col, max(10, 2 * len(name) + 2))
    sheet.freeze_panes(1, 0)
    book.close()
    return buf.getvalue()


def _checkpoint_props(m: CheckpointMark, lang: Lang) -> dict[str, Any]:
    return {
        "type": "checkpoint",
        "task_id": m.task_id,
        "id": m.id,
        "name": m.name,
        "radius_m": m.radius_m,
        "status": m.status,
        "label": STATUS[lang][m.status],
    }


def _checkin_props(m: CheckinMark, tz: timezone) -> dict[str, Any]:
    return {
        "type": "checkin",
        "task_id": m.task_id,
        "checkpoint_id": m.checkpoint_id,
        "dev": m.dev,
        "staff_id": m.staff,
        "time": local_time(m.ts, tz),
        "ts": m.ts,
        "method": m.method,
        "dist_m": m.dist_m,
    }


def to_geojson(report: Report, lang: Lang, tz: timezone = CHINA_TZ) -> bytes:
    """A FeatureCollection of checkpoints and check-ins (WGS-84 [lon, lat], RFC 7946)."""
    features = [_feature(m.lat, m.lon, _checkpoint_props(m, lang)) for m in report.checkpoints] + [
        _feature(m.lat, m.lon, _checkin_props(m, tz)) for m in report.checkins
    ]
    doc = {"type": "FeatureCollection", "features": features}
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def _feature(lat: float, lon: float, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    }


def _placemark(name: str, lat: float, lon: float, data: dict[str, Any]) -> str:
    extended = "".join(
        f'<Data name="{escape(k)}"><value>{escape("" if v is None else str(v))}</value></Data>'
        for k, v in data.items()
    )
    return (
        f"<Placemark><name>{escape(name)}</name><ExtendedData>{extended}</ExtendedData>"
        f"<Point><coordinates>{lon!r},{lat!r}</coordinates></Point></Placemark>"
    )


def _folder(name: str, marks: Sequence[str]) -> str:
    return f"<Folder><name>{escape(name)}</name>{''.join(marks)}</Folder>"


def to_kml(report: Report, lang: Lang, tz: timezone = CHINA_TZ) -> bytes:
    """KML 2.2: a folder of checkpoints (name, status) and one of check-ins (device, time)."""
    zh = lang == "zh"
    points = [
        _placemark(f"{m.name} ({STATUS[lang][m.status]})", m.lat, m.lon, _checkpoint_props(m, lang))
        for m in report.checkpoints
    ]
    pins = [
        _placemark(f"{m.dev} {local_time(m.ts, tz)}", m.lat, m.lon, _checkin_props(m, tz))
        for m in report.checkins
    ]
    body = _folder("巡查点" if zh else "checkpoints", points) + _folder(
        "打卡记录" if zh else "check-ins", pins
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<kml xmlns="http://www.opengis.net/kml/2.2"><Document>{body}</Document></kml>\n'
    ).encode()


WRITERS = {"csv": to_csv, "xlsx": to_xlsx, "geojson": to_geojson, "kml": to_kml}
