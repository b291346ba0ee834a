"""The gateway's config sections load on first use: same validation, not built by a patrol device.

Issue 22 point 3: `[[cameras]]` and `[alarm_http]` are validated by agent.vision.config's models,
imported only when a file has the section (agent/config/deferred.py). `Eager` below is the
config as it was before, with the models imported up front: for any input both give the same
errors in the same order and the same values and dumps.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.config.model import Config, format_errors, parse
from agent.errors import ConfigError
from agent.vision.config import AlarmHttpConfig, CameraConfig, CameraList
from tests.kits.paths import REPO

GATEWAY = tomllib.loads((REPO / "configs" / "camera_gateway.toml").read_text())
PATROL = tomllib.loads((REPO / "configs" / "patrol.toml").read_text())


class Eager(Config):
    """The config with the gateway's models imported at once (what Config was before)."""

    cameras: CameraList = []  # noqa: RUF012 (a pydantic field, as in Config)
    alarm_http: AlarmHttpConfig | None = None


def errors(data: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(parse's problems, Eager's problems) for `data`; [] where it is valid."""
    try:
        parse(data)
        deferred: list[tuple[str, str]] = []
    except ConfigError as exc:
        deferred = exc.problems
    try:
        Eager.model_validate(data)
        eager: list[tuple[str, str]] = []
    except ValidationError as exc:
        eager = format_errors(exc)
    return deferred, eager


def test_the_fields_keep_their_place_in_the_config() -> None:
    assert list(Config.model_fields) == list(Eager.model_fields)


@pytest.mark.parametrize("role", ["patrol", "camera_gateway"])
def test_bad_gateway_sections_give_the_same_errors_in_the_same_order(role: str) -> None:
    data = {
        "device": {"id": "dev-1", "role": role},
        "companion": {"host": "0.0.0.0"},
        "cameras": [
            {"id": "c1", "source": "bogus:", "fps": 0, "zonez": []},
            {
                "id": "c1",
                "source": "file:/x.mp4",
                "zones": [{"name": "z", "polygon": [[0, 0], [9, 9], [0, 9], [9, 0]], "rules": []}],
                "detector": {"kind": "nope"},
                "modes": {"emergency": {"crowd": {"min_people": 0}}},
            },
        ],
        "alarm_http": {"port": -1, "token": "short"},
        "metrics": {"host": "localhost"},
    }
    deferred, eager = errors(data)
    assert deferred == eager
    where = [w.split(".")[0] for w, _ in deferred]
    assert where == sorted(where, key=list(Config.model_fields).index)  # field order
    assert {"companion", "cameras", "alarm_http", "metrics"} <= set(where)
    # The camera ids clash only once each camera is valid: a file with one problem left.
    clash = {**GATEWAY, "cameras": [GATEWAY["cameras"][0]] * 2}
    unique = [("cameras", "Value error, camera ids must be unique")]
    assert errors(clash) == (unique, unique)
    why = "Input should be a valid dictionary or instance of AlarmHttpConfig"
    not_a_table = [("alarm_http", why)]
    assert errors({**GATEWAY, "alarm_http": 5}) == (not_a_table, not_a_table)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.floats(-1, 1e5) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids),
    max_leaves=8,
)
CAMERA_KEYS = st.sampled_from(
    ["id", "source", "fps", "width", "height", "zones", "detector", "thresholds", "modes", "x"]
)
ALARM_KEYS = st.sampled_from(["host", "port", "token", "token_file", "cert_file", "cameras", "y"])


@settings(max_examples=60, deadline=None)
@given(
    cam=st.dictionaries(CAMERA_KEYS, JSON, max_size=3),
    alarm=st.dictionaries(ALARM_KEYS, JSON, max_size=3),
    role=st.sampled_from(["patrol", "camera_gateway"]),
)
def test_any_gateway_section_validates_as_the_models_do(
    cam: dict[str, Any], alarm: dict[str, Any], role: str
) -> None:
    base = {"device": {"id": "dev-1", "role": role}}
    camera = {**GATEWAY["cameras"][0], **cam}
    for data in (
        {**base, "cameras": [camera]},
        {**base, "alarm_http": {**GATEWAY["alarm_http"], **alarm}},
        {**base, "cameras": cam, "alarm_http": alarm or None},
    ):
        deferred, eager = errors(data)
        assert deferred == eager


@pytest.mark.parametrize("text", [GATEWAY, PATROL], ids=["camera_gateway", "patrol"])
def test_values_and_dumps_are_the_models_own(text: dict[str, Any]) -> None:
    cfg, eager = parse(text), Eager.model_validate(text)
    assert all(isinstance(c, CameraConfig) for c in cfg.cameras)
    assert cfg.cameras == eager.cameras and cfg.alarm_http == eager.alarm_http
    dumps: list[dict[str, Any]] = [{}, {"mode": "json"}, {"exclude_none": True}]
    for kw in [*dumps, {"mode": "json", "exclude_unset": True}]:
        assert cfg.model_dump(**kw) == eager.model_dump(**kw)  # type: ignore[arg-type]
    assert parse(cfg.model_dump(mode="json", exclude_unset=True)) == cfg


def test_unknown_keys_in_a_gateway_section_get_a_suggestion() -> None:
    from agent.commands.check_config import explain, known_keys

    assert "fps" in known_keys(["cameras", "0"]) and "token_file" in known_keys(["alarm_http"])
    data = {**GATEWAY, "alarm_http": {**GATEWAY["alarm_http"], "prot": 1}}
    with pytest.raises(ConfigError) as exc:
        parse(data)
    assert explain(exc.value.problems, data) == [
        ("alarm_http.prot", "unknown key (did you mean 'port'?)")
    ]


IMPORTS = """
import sys, tomllib
from agent.config.model import parse
parse(tomllib.loads(open(sys.argv[1]).read()))
print(sorted(m for m in sys.modules if m.startswith("agent.vision")))
"""


@pytest.mark.parametrize(
    ("name", "vision"), [("patrol.toml", False), ("camera_gateway.toml", True)]
)
def test_only_a_file_with_gateway_sections_imports_their_models(name: str, vision: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(REPO / "configs" / name)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert ("agent.vision.config" in proc.stdout) is vision, proc.stdout
