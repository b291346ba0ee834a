"""Config: the documented [[cameras]] keys, strictness, per-mode thresholds, [alarm_http]."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import BaseModel, ValidationError

from agent.errors import ConfigError
from agent.vision.config import (
    AlarmHttpConfig,
    CameraConfig,
    CameraList,
    load_cameras,
)
from agent.vision.detector_config import OnnxDetectorConfig, PeopleDetectorConfig, SsdDetectorConfig

DOCUMENTED = """
[[cameras]]
id = "cam-lake-1"
source = "file:videos/shore.mp4"   # or "picamera2", "v4l2:0", "rtsp://...", "file:<image folder>"
fps = 5
[[cameras.zones]]
name = "shore"
polygon = [[0, 300], [640, 300], [640, 480], [0, 480]]   # pixels of the frame as captured
rules = ["water_zone", "crowd"]
"""


def test_documented_keys_parse_exactly():
    (cam,) = load_cameras(tomllib.loads(DOCUMENTED)["cameras"])
    assert cam.id == "cam-lake-1"
    assert cam.source == "file:videos/shore.mp4"
    assert cam.fps == 5
    (zone,) = cam.zones
    assert zone.name == "shore"
    assert zone.polygon == [(0, 300), (640, 300), (640, 480), (0, 480)]
    assert zone.rules == ["water_zone", "crowd"]
    assert isinstance(cam.detector, SsdDetectorConfig)  # the person model (HOG + faces without)
    assert isinstance(cam.detector.fallback, PeopleDetectorConfig)


@pytest.mark.parametrize(
    "source",
    [
        "picamera2",
        "picamera2:1",
        "v4l2:0",
        "v4l2:/dev/video2",
        "rtsp://10.0.0.5/s1",
        "rtsps://cam/x",
        "http://cam/mjpg",
        "file:videos/a.mp4",
        "file:/srv/frames",
    ],
)
def test_source_forms_accepted(source):
    assert CameraConfig(id="c", source=source).source == source


@pytest.mark.parametrize("source", ["", "v4l2:", "ftp://x", "videos/a.mp4", "picamera3"])
def test_bad_sources_refused(source):
    with pytest.raises(ValidationError):
        CameraConfig(id="c", source=source)


@pytest.mark.parametrize(
    "patch, where",
    [
        ({"fsp": 5}, "cameras.0.fsp"),
        ({"fps": 0}, "cameras.0.fps"),
        (
            {"zones": [{"name": "z", "polygon": [[0, 0], [1, 1]], "rules": ["crowd"]}]},
            "cameras.0.zones.0.polygon",
        ),
        (
            {"zones": [{"name": "z", "polygon": [[0, 0], [5, 5], [10, 10]], "rules": ["crowd"]}]},
            "cameras.0.zones.0.polygon",
        ),
        (
            {"zones": [{"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]], "rules": ["swim"]}]},
            "cameras.0.zones.0.rules.0",
        ),
        ({"thresholds": {"crowd": {"min_peeple": 3}}}, "cameras.0.thresholds.crowd.min_peeple"),
        ({"modes": {"panic": {}}}, "cameras.0.modes.panic.[key]"),
    ],
)
def test_problems_are_reported_with_their_key_path(patch, where):
    raw = {"id": "cam-1", "source": "v4l2:0", **patch}
    with pytest.raises(ConfigError) as err:
        load_cameras([raw])
    assert where in [p for p, _ in err.value.problems], err.value.problems


def test_mode_overrides_merge_and_are_validated():
    cam = CameraConfig.model_validate(
        {
            "id": "cam-1",
            "source": "v4l2:0",
            "thresholds": {"crowd": {"min_people": 8, "min_s": 20}},
            "modes": {"emergency": {"crowd": {"min_people": 3}, "water_zone": {"priority": 0}}},
        }
    )
    normal, emergency = cam.thresholds_for("normal"), cam.thresholds_for("emergency")
    assert (normal.crowd.min_people, normal.crowd.min_s) == (8, 20)
    assert (emergency.crowd.min_people, emergency.crowd.min_s) == (3, 20)
    assert normal.priority("water_zone") == 2 and emergency.priority("water_zone") == 0
    assert cam.thresholds_for("holiday") == normal
    for bad, where in (
        ({"crowd": {"min_people": 0}}, "modes.holiday.crowd.min_people"),
        ({"crowd": {"nope": 1}}, "modes.holiday.crowd.nope"),
        ({"swim": {"x": 1}}, "modes.holiday.swim"),
    ):
        with pytest.raises(ValidationError, match=where):
            CameraConfig.model_validate({"id": "c", "source": "v4l2:0", "modes": {"holiday": bad}})


def test_water_zone_hours_windows():
    cam = CameraConfig.model_validate(
        {
            "id": "c",
            "source": "v4l2:0",
            "thresholds": {"water_zone": {"hours": ["20:00-06:30", "12:00-24:00"]}},
        }
    )
    assert cam.thresholds.water_zone.windows() == ((1200, 390), (720, 1440))
    with pytest.raises(ValidationError):
        CameraConfig.model_validate(
            {"id": "c", "source": "v4l2:0", "thresholds": {"water_zone": {"hours": ["8-9"]}}}
        )


def test_onnx_detector_selected_by_kind():
    cam = CameraConfig.model_validate(
        {
            "id": "c",
            "source": "v4l2:0",
            "detector": {"kind": "onnx", "model": "models/y.onnx", "classes": {"0": "person"}},
        }
    )
    assert isinstance(cam.detector, OnnxDetectorConfig)
    assert cam.detector.classes == {0: "person"}


def test_camera_ids_unique_in_a_list():
    class Main(BaseModel):
        cameras: CameraList = []

    with pytest.raises(ValidationError):
        Main.model_validate({"cameras": [{"id": "a", "source": "v4l2:0"}] * 2})
    with pytest.raises(ConfigError):
        load_cameras([{"id": "a", "source": "v4l2:0"}, {"id": "a", "source": "v4l2:1"}])


def test_alarm_http_defaults_and_token_rules(tmp_path):
    cfg = AlarmHttpConfig(token="0123456789abcdef")
    assert cfg.host == "127.0.0.1"
    assert cfg.load_token() == "0123456789abcdef"
    assert "0123456789abcdef" not in repr(cfg)
    with pytest.raises(ValidationError):
        AlarmHttpConfig()
    with pytest.raises(ValidationError):
        AlarmHttpConfig(token="short")
    with pytest.raises(ValidationError):
        AlarmHttpConfig(token="0123456789abcdef", token_file="t")
    (tmp_path / "tok").write_text("  fedcba9876543210fedcba\n")
    assert AlarmHttpConfig(token_file="tok").load_token(tmp_path) == "fedcba9876543210fedcba"
    with pytest.raises(ConfigError):
        AlarmHttpConfig(token_file="missing").load_token(tmp_path)
    (tmp_path / "weak").write_text("abc")
    with pytest.raises(ConfigError):
        AlarmHttpConfig(token_file=str(tmp_path / "weak")).load_token()
