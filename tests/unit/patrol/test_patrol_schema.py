"""The §6 tasks body at the edge: strict validation with key paths (used for `invalid_body`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.patrol.core import Checkpoint, TaskSet, parse_tasks_body


def body() -> dict[str, Any]:
    return {
        "tasks": [
            {
                "id": "t1",
                "name": "Morning round",
                "staff_id": "s-17",
                "start_ms": 1_764_000_000_000,
                "end_ms": 1_764_003_600_000,
                "order": "sequence",
                "checkpoints": [
                    {
                        "id": "c1",
                        "name": "Gate",
                        "lat": 30.2741,
                        "lon": 120.1551,
                        "radius_m": 25,
                        "dwell_s": 10,
                        "tags": ["04a1b2c3d4e5f6", "04A1B2C3D4E5F6"],
                        "photo": False,
                    },
                    {
                        "id": "c2",
                        "name": "Kiosk",
                        "lat": 30.2751,
                        "lon": 120.1561,
                        "radius_m": 30.5,
                        "dwell_s": 0,
                        "tags": [],
                        "photo": True,
                    },
                ],
            },
            {
                "id": "t2",
                "name": "Night",
                "staff_id": None,
                "start_ms": 0,
                "end_ms": 1,
                "order": "any",
                "checkpoints": [
                    {
                        "id": "c1",
                        "name": "",
                        "lat": -1.0,
                        "lon": 179.5,
                        "radius_m": 10,
                        "dwell_s": 5.5,
                        "tags": ["DEADBEEF"],
                        "photo": False,
                    }
                ],
            },
        ]
    }


def problems(raw: object) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as err:
        parse_tasks_body(raw)
    return err.value.problems


def paths(raw: object) -> list[str]:
    return [p for p, _ in problems(raw)]


def test_valid_body_parses_to_frozen_values() -> None:
    ts = parse_tasks_body(body())
    assert isinstance(ts, TaskSet)
    t1 = ts.tasks[0]
    assert (t1.id, t1.staff_id, t1.order, t1.total) == ("t1", "s-17", "sequence", 2)
    c1 = t1.checkpoints[0]
    assert isinstance(c1, Checkpoint)
    assert c1.tags == ("04A1B2C3D4E5F6",)  # upper-cased, duplicate dropped
    assert c1.radius_m == 25.0 and c1.dwell_s == 10.0
    assert ts.tasks[1].staff_id is None
    with pytest.raises(AttributeError):
        c1.radius_m = 3.0  # type: ignore[misc]


def test_to_body_round_trips_through_json() -> None:
    ts = parse_tasks_body(body())
    assert parse_tasks_body(json.loads(json.dumps(ts.to_body()))) == ts


def test_empty_task_set_is_valid_and_clears_the_patrol() -> None:
    assert parse_tasks_body({"tasks": []}) == TaskSet()


@pytest.mark.parametrize("raw", [None, [], "tasks", 3])
def test_body_must_be_an_object(raw: object) -> None:
    assert paths(raw) == ["body"]


def test_unknown_keys_are_rejected_with_their_path() -> None:
    b = body()
    b["tasks"][0]["checkpoints"][1]["colour"] = "red"
    b["extra"] = 1
    assert sorted(paths(b)) == ["extra", "tasks[0].checkpoints[1].colour"]


def test_missing_keys_are_reported() -> None:
    b = body()
    del b["tasks"][1]["staff_id"]
    del b["tasks"][0]["checkpoints"][0]["photo"]
    assert sorted(paths(b)) == ["tasks[0].checkpoints[0].photo", "tasks[1].staff_id"]


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("cp", "radius_m", "25"),  # no string-to-number coercion
        ("cp", "radius_m", 0),
        ("cp", "radius_m", -3),
        ("cp", "dwell_s", -1),
        ("cp", "lat", 91.0),
        ("cp", "lon", -180.5),
        ("cp", "photo", 1),  # no int-to-bool coercion
        ("cp", "tags", ["XYZ12345"]),
        ("cp", "tags", ["ABC"]),
        ("cp", "tags", "04A1B2C3"),
        ("cp", "id", ""),
        ("task", "start_ms", True),  # bool is not an int here
        ("task", "start_ms", 1.5),
        ("task", "end_ms", -1),
        ("task", "order", "random"),
        ("task", "checkpoints", []),
        ("task", "staff_id", 17),
    ],
)
def test_bad_values_are_rejected_at_their_key(where: str, key: str, value: object) -> None:
    b = body()
    target = b["tasks"][0] if where == "task" else b["tasks"][0]["checkpoints"][1]
    target[key] = value
    prefix = "tasks[0]" if where == "task" else "tasks[0].checkpoints[1]"
    assert all(p.startswith(f"{prefix}.{key}") for p in paths(b))


def test_nan_is_rejected() -> None:
    b = body()
    b["tasks"][0]["checkpoints"][0]["lat"] = float("nan")
    assert paths(b) == ["tasks[0].checkpoints[0].lat"]


def test_cross_field_rules_name_the_key() -> None:
    b = body()
    b["tasks"][1]["id"] = "t1"
    b["tasks"][0]["end_ms"] = b["tasks"][0]["start_ms"]
    b["tasks"][0]["checkpoints"][1]["id"] = "c1"
    assert sorted(paths(b)) == [
        "tasks[0].checkpoints[1].id",
        "tasks[0].end_ms",
        "tasks[1].id",
    ]


def test_same_checkpoint_id_in_two_tasks_is_fine() -> None:
    b = copy.deepcopy(body())
    ts = parse_tasks_body(b)
    assert ts.tasks[0].checkpoints[0].id == ts.tasks[1].checkpoints[0].id == "c1"


def test_error_message_carries_every_problem() -> None:
    b = body()
    b["tasks"][0]["order"] = "x"
    b["tasks"][1]["checkpoints"][0]["radius_m"] = None
    err = problems(b)
    assert len(err) == 2
    assert "tasks[0].order" in str(ConfigError(err))
