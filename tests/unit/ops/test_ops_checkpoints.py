"""checkpoints: GeoJSON and CSV into a tasks body, with errors naming the feature or line."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.ops.checkpoints import Defaults, TaskSpec, from_csv, from_geojson, tasks_body
from agent.patrol.core.schema import parse_tasks_body

SPEC = TaskSpec("t-1", "Lake loop", "s-1023", 1_700_000_000_000, 1_700_003_600_000, "sequence")
CSV = """id,name,lat,lon,radius_m,dwell_s,tags,photo
cp-pier,Pier,34.77905,113.73120,30,15,04a1b2c3;04D4E5F6,true
cp-bridge,Bridge,34.77960,113.73130,,,,
"""


def feature(props: dict[str, Any], lon: float = 113.7312, lat: float = 34.77905) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    }


def collection(*features: dict[str, Any]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def problems(fn: Any, *args: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        fn(*args)
    return err.value.problems


def test_csv_into_a_valid_tasks_body() -> None:
    body = tasks_body(SPEC, from_csv(CSV))
    parse_tasks_body(body)
    task = body["tasks"][0]
    assert (task["id"], task["order"], task["staff_id"]) == ("t-1", "sequence", "s-1023")
    pier, bridge = task["checkpoints"]
    assert pier == {
        "id": "cp-pier",
        "name": "Pier",
        "lat": 34.77905,
        "lon": 113.7312,
        "radius_m": 30.0,
        "dwell_s": 15.0,
        "tags": ["04A1B2C3", "04D4E5F6"],
        "photo": True,
    }
    assert (bridge["radius_m"], bridge["dwell_s"], bridge["tags"], bridge["photo"]) == (
        25.0,
        10.0,
        [],
        False,
    )


def test_csv_defaults_come_from_the_caller_and_name_defaults_to_id() -> None:
    pts = from_csv("id,lat,lon\ncp-1,1,2\n", Defaults(radius_m=50, dwell_s=0, photo=True))
    assert pts[0].checkpoint["name"] == "cp-1"
    assert (pts[0].checkpoint["radius_m"], pts[0].checkpoint["photo"]) == (50, True)


def test_geojson_is_lon_lat() -> None:
    text = collection(
        feature({"id": "cp-1", "name": "Pier", "tags": ["04a1b2c3"], "photo": True}),
        {
            **feature({"name": "Bridge", "radius_m": 40, "colour": "red"}, 113.7313, 34.7796),
            "id": 7,
        },
    )
    body = tasks_body(SPEC, from_geojson(text))
    cps = body["tasks"][0]["checkpoints"]
    assert (cps[0]["lat"], cps[0]["lon"], cps[0]["tags"], cps[0]["photo"]) == (
        34.77905,
        113.7312,
        ["04A1B2C3"],
        True,
    )
    assert (cps[1]["id"], cps[1]["radius_m"], cps[1]["lat"]) == ("7", 40.0, 34.7796)


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("id,name,lat,lon\ncp-1,A,1,2\ncp-2,B,north,2\n", "line 3", "lat must be a number"),
        ("id,name,lat,lon\ncp-1,A,1,2\n,B,1,2\n", "line 3", "id is empty"),
        ("id,lat,lon,colour\ncp-1,1,2,red\n", "line 1", "unknown columns ['colour']"),
        ("id,name,lat\ncp-1,A,1\n", "line 1", "missing columns ['lon']"),
        ("id,lat,lon,photo\ncp-1,1,2,maybe\n", "line 2", "photo must be true/false"),
        ("id,lat,lon\ncp-1,1,2,3\n", "line 2", "more fields"),
        ("id,lat,lon\n", "csv", "no checkpoint rows"),
    ],
)
def test_csv_errors_name_the_line(text: str, where: str, says: str) -> None:
    [(got_where, reason)] = problems(from_csv, text)
    assert got_where == where and says in reason


def test_schema_errors_are_mapped_back_to_the_csv_line() -> None:
    pts = from_csv("id,lat,lon,tags\ncp-1,1,2,\ncp-2,95,2,\ncp-3,1,2,XYZ\n")
    got = problems(tasks_body, SPEC, pts)
    assert ("line 3", "lat: Input should be less than or equal to 90") in got
    assert any(w == "line 4" and r.startswith("tags[0]") for w, r in got)


def test_duplicate_checkpoint_ids_name_the_second_one() -> None:
    pts = from_csv("id,lat,lon\ncp-1,1,2\ncp-1,1,3\n")
    assert problems(tasks_body, SPEC, pts) == [("line 3", "id: duplicate checkpoint id 'cp-1'")]


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("[]", "geojson", "FeatureCollection"),
        (collection(), "geojson", "no features"),
        (collection(feature({"id": "a"}), feature({})), "feature 1", "needs an id"),
        (
            collection(
                {
                    "type": "Feature",
                    "properties": {"id": "a"},
                    "geometry": {"type": "LineString", "coordinates": []},
                }
            ),
            "feature 0",
            "Point",
        ),
        (collection(feature({"id": "a"}, lon=True)), "feature 0", "longitude must be a number"),
        (collection(feature({"id": "a", "tags": 5})), "feature 0", "tags"),
    ],
)
def test_geojson_errors_name_the_feature(text: str, where: str, says: str) -> None:
    [(got_where, reason)] = problems(from_geojson, text)
    assert got_where == where and says in reason


def test_into_an_existing_set_replaces_the_task_with_the_same_id() -> None:
    first = tasks_body(SPEC, from_csv(CSV))
    other = TaskSpec("t-2", "Night", None, 1_700_000_000_000, 1_700_003_600_000)
    both = tasks_body(other, from_csv("id,lat,lon\nx,1,2\n"), first)
    again = tasks_body(SPEC, from_csv("id,lat,lon\ny,1,2\n"), both)
    assert [t["id"] for t in again["tasks"]] == ["t-2", "t-1"]
    assert again["tasks"][1]["checkpoints"][0]["id"] == "y"


def test_task_window_is_checked() -> None:
    bad = TaskSpec("t-1", "x", None, 2, 1)
    assert problems(tasks_body, bad, from_csv(CSV)) == [
        ("tasks[0].end_ms", "must be after start_ms")
    ]


_ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_point = st.fixed_dictionaries(
    {
        "id": _ident,
        "name": st.text(alphabet="ABCDEFGH ijkl", min_size=1, max_size=20)
        .map(str.strip)
        .filter(bool),
        "lat": st.floats(-90, 90, allow_nan=False),
        "lon": st.floats(-180, 180, allow_nan=False),
        "radius_m": st.floats(0.5, 10_000, allow_nan=False),
        "dwell_s": st.floats(0, 86_400, allow_nan=False),
        "tags": st.lists(
            st.binary(min_size=4, max_size=10).map(lambda b: b.hex().upper()), max_size=3
        ),
        "photo": st.booleans(),
    }
)


@given(st.lists(_point, min_size=1, max_size=8, unique_by=lambda p: p["id"]))
def test_csv_and_geojson_give_the_same_checkpoints(points: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "name", "lat", "lon", "radius_m", "dwell_s", "tags", "photo"])
    for p in points:
        w.writerow(
            [
                p["id"],
                p["name"],
                repr(p["lat"]),
                repr(p["lon"]),
                repr(p["radius_m"]),
                repr(p["dwell_s"]),
                ";".join(p["tags"]),
                str(p["photo"]).lower(),
            ]
        )
    feats = [
        feature({k: v for k, v in p.items() if k not in ("lat", "lon")}, p["lon"], p["lat"])
        for p in points
    ]
    from_c = tasks_body(SPEC, from_csv(buf.getvalue()))
    from_g = tasks_body(SPEC, from_geojson(collection(*feats)))
    assert from_c == from_g
    assert from_c["tasks"][0]["checkpoints"] == points
