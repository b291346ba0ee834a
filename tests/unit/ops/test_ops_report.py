"""ops report patrol: the day per grid, task and worker, from archived checkin/patrol events."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from defusedxml.ElementTree import fromstring
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ops import cli
from agent.ops.mqtt import Message
from agent.ops.report import render
from agent.ops.report.events import Event
from agent.ops.report.patrol import Day, patrol_report
from agent.ops.watch import Archive
from agent.patrol.core.schema import parse_tasks_body
from firmware_bridge.geo import offset_deg
from tests.kits.report_archive import FakeArchive, checkin_body, patrol_body

DAY = Day.of(date(2026, 12, 7))  # local (+08:00) midnight to midnight
H = 3_600_000
BASE = (34.7536, 113.6602)
P1 = BASE
P2 = offset_deg(*BASE, 300.0, 0.0)  # 300 m north
P3 = offset_deg(*BASE, 300.0, 400.0)  # then 400 m east


def _task(tid: str, name: str, start_h: int, end_h: int, n: int = 3) -> dict[str, object]:
    cps = [
        {
            "id": f"{tid}-cp{i}",
            "name": f"点{i}",
            "lat": BASE[0] + i * 0.001,
            "lon": BASE[1],
            "radius_m": 25.0,
            "dwell_s": 10.0,
            "tags": [],
            "photo": False,
        }
        for i in range(1, n + 1)
    ]
    return {
        "id": tid,
        "name": name,
        "staff_id": None,
        "start_ms": DAY.start_ms + start_h * H,
        "end_ms": DAY.start_ms + end_h * H,
        "order": "any",
        "checkpoints": cps,
    }


TASKS_BODY = {
    "tasks": [
        _task("t-east", "东岸", 8, 12),
        _task("t-west", "西岸", 8, 12, n=2),
        _task("t-none", "无人", 13, 17, n=2),
        _task("t-old", "昨天", -20, -10),
    ]
}
TASKS = parse_tasks_body(TASKS_BODY)
ZONES = {"pd-0042": ("ruyihu", "ruyihu.cbd"), "pd-0043": ("ruyihu", "ruyihu.west")}


def fill(arch: FakeArchive) -> None:
    """pd-0042 walks t-east: two GPS check-ins, one missed, overdue; pd-0043 completes t-west
    with an NFC check-in and one stamped after the window (late)."""
    at = DAY.start_ms
    arch.birth("pd-0042", at, ["ruyihu", "ruyihu.cbd"])
    arch.birth("pd-0043", at, ["ruyihu", "ruyihu.west"])
    arch.add("pd-0042", "patrol", at + 8 * H, patrol_body("t-east", "started", None, 0, 3))
    arch.add(
        "pd-0042",
        "checkin",
        at + 8 * H + 1_800_000,
        checkin_body("t-east", "t-east-cp1", "w-li", P1),
    )
    arch.add("pd-0042", "checkin", at + 9 * H, checkin_body("t-east", "t-east-cp2", "w-li", P2))
    arch.add("pd-0042", "checkin", at + 10 * H, checkin_body("t-east", "t-east-cp2", "w-li", P3))
    arch.add(
        "pd-0042",
        "patrol",
        at + 11 * H,
        patrol_body("t-east", "checkpoint_missed", "t-east-cp3", 2, 3),
    )
    arch.add("pd-0042", "patrol", at + 12 * H, patrol_body("t-east", "overdue", None, 2, 3))
    arch.add("pd-0043", "checkin", at + 9 * H, checkin_body("t-west", "t-west-cp1", "w-wang", None))
    arch.add(
        "pd-0043",
        "checkin",
        at + 12 * H + 60_000,
        checkin_body("t-west", "t-west-cp2", "w-wang", P1),
    )
    arch.add(
        "pd-0043", "patrol", at + 12 * H + 61_000, patrol_body("t-west", "completed", None, 2, 2)
    )
    # Another day's check-in is not in this day's report.
    arch.add("pd-0043", "checkin", at - 2 * H, checkin_body("t-west", "t-west-cp1", "w-wang", P1))


def events() -> list[Event]:
    arch = FakeArchive()
    fill(arch)
    return [Event(r[0], r[2], r[1], r[5], json.loads(r[9])["body"]) for r in arch.rows]


def test_rows_per_grid_task_and_worker() -> None:
    report = patrol_report(TASKS, events(), ZONES, DAY, as_of_ms=DAY.end_ms)
    east, none, west = report.rows[1], report.rows[0], report.rows[2]
    assert (east.zone, east.task_id, east.staff, east.dev) == (
        "ruyihu.cbd",
        "t-east",
        "w-li",
        "pd-0042",
    )
    assert (east.total, east.checked, east.missed, east.late) == (3, 2, 1, 0)
    assert (east.completed, east.overdue) == (False, True)
    assert (
        east.first_ms == DAY.start_ms + 8 * H + 1_800_000 and east.last_ms == DAY.start_ms + 10 * H
    )
    assert east.distance_m == pytest.approx(700.0, abs=0.5)  # 300 m north, then 400 m east
    assert (west.zone, west.checked, west.missed, west.late, west.completed) == (
        "ruyihu.west",
        2,
        0,
        1,
        True,
    )
    assert west.distance_m == 0.0  # one positioned check-in: nothing to measure
    # Nobody walked t-none: one row with no device, every checkpoint missed once it ended.
    assert (none.task_id, none.dev, none.checked, none.missed) == ("t-none", "", 0, 2)
    assert "t-old" not in {r.task_id for r in report.rows}


def test_open_windows_are_not_missed_and_zone_filters() -> None:
    noon = DAY.start_ms + 12 * H + 30 * 60_000
    report = patrol_report(TASKS, events(), ZONES, DAY, as_of_ms=noon)
    by_task = {r.task_id: r for r in report.rows}
    assert by_task["t-none"].missed == 0  # its window (13-17 h) has not even begun
    assert by_task["t-east"].missed == 1  # reported missed by the device
    marks = {m.id: m.status for m in report.checkpoints}
    assert marks["t-east-cp1"] == "checked" and marks["t-east-cp3"] == "missed"
    assert marks["t-none-cp1"] == "open"
    west = patrol_report(TASKS, events(), ZONES, DAY, noon, zone="ruyihu.west")
    assert [r.dev for r in west.rows] == ["pd-0043"]
    both = patrol_report(TASKS, events(), ZONES, DAY, noon, zone="ruyihu")
    assert [r.dev for r in both.rows] == ["pd-0042", "pd-0043"]


@settings(max_examples=60, deadline=None)
@given(st.permutations(events()), st.integers(DAY.start_ms, DAY.end_ms + 2 * H))
def test_order_does_not_matter_and_counts_add_up(shuffled: list[Event], as_of: int) -> None:
    report = patrol_report(TASKS, shuffled, ZONES, DAY, as_of)
    assert report == patrol_report(TASKS, events(), ZONES, DAY, as_of)
    for row in report.rows:
        assert 0 <= row.checked + row.missed <= row.total
        assert row.distance_m >= 0.0 and row.late >= 0


@given(st.lists(st.sampled_from(events()), max_size=30))
def test_any_subset_of_events_keeps_the_invariants(subset: list[Event]) -> None:
    report = patrol_report(TASKS, subset, ZONES, DAY, DAY.end_ms)
    for row in report.rows:
        assert row.checked + row.missed == row.total  # every window ended: nothing open
        assert (row.first_ms is None) == (row.last_ms is None)


def test_csv_has_a_bom_chinese_headers_and_local_time() -> None:
    report = patrol_report(TASKS, events(), ZONES, DAY, DAY.end_ms)
    data = render.to_csv(report, "zh")
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["网格", "任务编号", "任务名称", "巡查员"]
    east = next(r for r in rows if r[1] == "t-east")
    assert east[11] == "2026-12-07 08:30:00" and east[10] == "是"
    en = list(csv.reader(io.StringIO(render.to_csv(report, "en").decode("utf-8-sig"))))
    assert en[0][:2] == ["grid", "task id"] and en[2][10] == "yes"


def test_xlsx_geojson_and_kml() -> None:
    report = patrol_report(TASKS, events(), ZONES, DAY, DAY.end_ms)
    with zipfile.ZipFile(io.BytesIO(render.to_xlsx(report, "zh"))) as zf:
        strings = zf.read("xl/sharedStrings.xml").decode()
        assert "网格" in strings and "东岸" in strings
        assert "巡查日报" in zf.read("xl/workbook.xml").decode()
    doc = json.loads(render.to_geojson(report, "zh"))
    kinds = [f["properties"]["type"] for f in doc["features"]]
    assert kinds.count("checkpoint") == 7 and kinds.count("checkin") == 4
    pin = next(f for f in doc["features"] if f["properties"]["type"] == "checkin")
    assert pin["geometry"]["coordinates"] == [P1[1], P1[0]]  # [lon, lat]
    root = fromstring(render.to_kml(report, "en"))
    names = [e.text for e in root.iter("{http://www.opengis.net/kml/2.2}name")]
    assert "checkpoints" in names and "点3 (missed)" in names


def test_cli_reads_the_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = FakeArchive()
    fill(arch)
    db = arch.write(tmp_path / "archive.db")
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(TASKS_BODY, ensure_ascii=False), encoding="utf-8")
    base = ["report", "patrol", "--date", "2026-12-07", "--tasks", str(tasks), "--db", str(db)]
    for name in ("day.csv", "day.xlsx", "day.geojson", "day.kml"):
        assert cli.main([*base, "--out", str(tmp_path / name)]) == 0, capsys.readouterr().err
    rows = list(csv.reader(io.StringIO((tmp_path / "day.csv").read_text(encoding="utf-8-sig"))))
    assert [r[4] for r in rows[1:]] == ["", "pd-0042", "pd-0043"]
    assert cli.main([*base, "--zone", "ruyihu.cbd", "--lang", "en"]) == 0
    out = capsys.readouterr().out.lstrip("\ufeff")
    assert out.splitlines()[0].startswith("grid,task id") and "pd-0043" not in out
    assert cli.main([*base, "--json"]) == 0  # for scripts: one JSON object per row
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["dev"] for line in lines] == ["", "pd-0042", "pd-0043"]
    assert cli.main([*base[:-1], str(tmp_path / "missing.db")]) == 2
    assert "no archive database" in capsys.readouterr().err


def test_cli_reads_a_watch_archive_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = FakeArchive()
    fill(arch)
    archive = Archive(tmp_path / "archive")
    for row in [*arch.rows, *arch.rows[:3]]:  # a watch archive keeps duplicates as they came
        topic = f"grid/v1/{row[0]}/{'ack' if row[2] == 'ack' else 'evt/' + row[2]}"
        archive.append(Message(topic, row[9].encode(), False, row[8]))
    for dev, *_, payload in arch.states:
        archive.append(Message(f"grid/v1/{dev}/state", payload.encode(), True, DAY.start_ms))
    archive.close()
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps(TASKS_BODY), encoding="utf-8")
    argv = ["report", "patrol", "--date", "2026-12-07", "--tasks", str(tasks), "--format", "csv"]
    assert cli.main([*argv, "--archive", str(tmp_path / "archive")]) == 0
    from_watch = capsys.readouterr().out
    db = arch.write(tmp_path / "archive.db")
    assert cli.main([*argv, "--db", str(db)]) == 0
    assert capsys.readouterr().out == from_watch
    assert cli.main([*argv[:3], "today", *argv[4:], "--archive", str(tmp_path / "archive")]) == 0
