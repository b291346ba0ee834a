"""Config sections of the patrol driver: `[buttons]`, `[camera]`, `[patrol]` (strict edges)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from agent.camera.spec import check_source
from agent.config.paths import UserPath

# gpiozero pin names: a BCM number, or "GPIO17", "BCM17", "BOARD11", "J8:11", "WPI0".
Pin = (
    Annotated[int, Field(ge=0, le=63)]
    | Annotated[str, StringConstraints(pattern=r"^(GPIO|BCM|BOARD|WPI|J8:)?\d{1,3}$")]
)
IncidentCategory = Literal[
    "vending", "parking", "sanitation", "facility", "safety", "crowd", "water", "fire", "other"
]
# The same spellings `[[cameras]].source` accepts (agent.vision.config), so one camera doc holds.


class _Model(BaseModel):
    # Validators built on first use, not at import (agent.config.model._Model says why).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ButtonsConfig(_Model):
    """[buttons]: GPIO pins (BCM numbering) of the buttons and feedback outputs; all optional."""

    sos: Pin | None = None
    checkin: Pin | None = None
    # A third button that reports an incident of this category and level, with a photo.
    incident: Pin | None = None
    incident_category: IncidentCategory = "other"
    incident_level: Annotated[int, Field(ge=1, le=4)] = 3
    led: Pin | None = None
    buzzer: Pin | None = None

    @model_validator(mode="after")
    def _distinct_pins(self) -> ButtonsConfig:
        pins = (self.sos, self.checkin, self.incident, self.led, self.buzzer)
        used = [str(p) for p in pins if p is not None]
        if len(set(used)) != len(used):
            raise ValueError("each pin may be used once")
        return self


class PatrolCameraConfig(_Model):
    """[camera]: the patrol device's still camera and how its JPEGs are made."""

    source: str
    width: Annotated[int, Field(ge=16, le=8192)] | None = 1280
    height: Annotated[int, Field(ge=16, le=8192)] | None = 960
    jpeg_quality: Annotated[int, Field(ge=1, le=95)] = 85
    # Longest a network stream may take to open or give a frame before the photo is given up.
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0

    _source = field_validator("source")(check_source)

    @model_validator(mode="after")
    def _size_pair(self) -> PatrolCameraConfig:
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        return self


class PatrolConfig(_Model):
    """[patrol]: photo quota, the local API's endpoint, and the driver's timers."""

    media_quota_bytes: Annotated[int, Field(ge=1024 * 1024)] = 64 * 1024 * 1024
    api: bool = True  # false: no local API at all
    # Unix socket (default state_dir/api.sock) or a TCP port on 127.0.0.1; not both.
    api_socket: UserPath | None = None
    api_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    api_max_body_bytes: Annotated[int, Field(ge=256, le=1024 * 1024)] = 16 * 1024
    tick_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # An NFC or manual check-in, incident or SOS attaches the latest fix only if this fresh.
    fix_max_age_s: Annotated[float, Field(gt=0, le=300)] = 5.0
    # Dwell runs and the outlier gate are saved at most this often when nothing else happens.
    save_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    reap_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # Check-in rule knobs an operator may need (docs/checkin.md): the patrol's top speed for
    # reach (0: off; raise it where patrols ride), and the optional hold tier (1.5: off).
    reach_speed_mps: Annotated[float, Field(ge=0, le=40)] = 2.0
    k_hold: Annotated[float, Field(ge=0, le=1.5)] = 1.5
    # Take a photo checkpoint's photo while the dwell runs, so the check-in need not wait for it.
    early_photo: bool = True
    early_photo_max_age_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    # The worker's safety (the timings are per mode, [modes.profiles.*]): movement for
    # man-down is beyond this radius plus both fixes' accuracy; indoors without a fix
    # man-down counts only when allowed; a trail point at most every trail_every_s (0: each fix).
    man_down_radius_m: Annotated[float, Field(ge=1, le=500)] = 10.0
    man_down_without_fix: bool = False
    trail_every_s: Annotated[float, Field(ge=0, le=600)] = 15.0

    @model_validator(mode="after")
    def _one_endpoint(self) -> PatrolConfig:
        if self.api_socket is not None and self.api_port is not None:
            raise ValueError("give api_socket or api_port, not both")
        return self

    def socket_path(self, state_dir: Path) -> Path | None:
        """Where the API's unix socket goes, or None when it listens on TCP (or is off)."""
        if not self.api or self.api_port is not None:
            return None
        return self.api_socket or state_dir / "api.sock"


class CompanionConfig(_Model):
    """[companion]: the phone page the patrol device serves (docs/companion.md); off by default."""

    enabled: bool = False
    # The device's private link (its Wi-Fi access point or USB tether address), never 0.0.0.0
    # by default: the page is for the phone on that link only.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080  # 0: any free port (tests)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The pairing code: digits derived from a secret in state_dir (`edge-agent companion-code`).
    code_digits: Annotated[int, Field(ge=4, le=10)] = 6
    pair_attempts_per_min: Annotated[int, Field(ge=1, le=60)] = 5
    session_s: Annotated[float, Field(ge=60, le=7 * 24 * 3600)] = 12 * 3600.0
    requests_per_min: Annotated[int, Field(ge=10, le=6000)] = 240
    max_sessions: Annotated[int, Field(ge=1, le=16)] = 2
    photo_max_bytes: Annotated[int, Field(ge=64 * 1024, le=32 * 1024 * 1024)] = 12 * 1024 * 1024
    max_photos: Annotated[int, Field(ge=0, le=8)] = 4

    @field_validator("host")
    @classmethod
    def _one_address(cls, value: str) -> str:
        # One address of the private link: "0.0.0.0" would put the page on every network.
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("an IP address of the device's private link") from None
        if addr.is_unspecified:
            raise ValueError("not 0.0.0.0 / ::: give the private link's own address")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> CompanionConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self
