"""The `[buttons]`, `[camera]` and `[patrol]` config sections (pydantic, extra="forbid")."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.patrol.config import ButtonsConfig, PatrolCameraConfig, PatrolConfig


def test_buttons_pins_are_gpiozero_names_and_distinct() -> None:
    b = ButtonsConfig(sos=17, checkin="GPIO27", led="BOARD15", buzzer=23)
    assert (b.sos, b.checkin, b.incident, b.incident_level) == (17, "GPIO27", None, 3)
    with pytest.raises(ValidationError, match="each pin may be used once"):
        ButtonsConfig(sos=17, led=17)
    with pytest.raises(ValidationError):
        ButtonsConfig(sos="pin17")
    with pytest.raises(ValidationError, match="Extra inputs"):
        ButtonsConfig.model_validate({"sos": 17, "panic": 18})
    with pytest.raises(ValidationError):
        ButtonsConfig(incident_category="graffiti")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "source",
    [
        "picamera2",
        "picamera2:1",
        "v4l2:0",
        "v4l2:/dev/video2",
        "rtsp://10.0.0.5/s1",
        "file:/srv/pics",
        "file:demo.mp4",
    ],
)
def test_camera_sources(source: str) -> None:
    assert PatrolCameraConfig(source=source).source == source


def test_camera_rejects_bad_source_and_half_size() -> None:
    with pytest.raises(ValidationError, match="expected"):
        PatrolCameraConfig(source="/dev/video0")
    with pytest.raises(ValidationError, match="go together"):
        PatrolCameraConfig(source="v4l2:0", width=640, height=None)
    with pytest.raises(ValidationError):
        PatrolCameraConfig(source="v4l2:0", jpeg_quality=100)


def test_patrol_api_endpoint() -> None:
    state = Path("/var/lib/edge-agent")
    assert PatrolConfig().socket_path(state) == state / "api.sock"
    assert PatrolConfig(api_socket=Path("/run/edge/api.sock")).socket_path(state) == Path(
        "/run/edge/api.sock"
    )
    assert PatrolConfig(api_port=8080).socket_path(state) is None
    assert PatrolConfig(api=False).socket_path(state) is None
    with pytest.raises(ValidationError, match="not both"):
        PatrolConfig(api_socket=Path("/x.sock"), api_port=8080)
    with pytest.raises(ValidationError):
        PatrolConfig(media_quota_bytes=1000)
