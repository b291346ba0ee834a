"""The agent's TOML config: pydantic v2 models (extra="forbid"), loaded once, never mutated."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.config import credentials
from agent.config.deferred import deferred
from agent.config.paths import UserPath
from agent.config.telemetry import LoggingConfig, MetricsConfig
from agent.errors import ConfigError
from agent.modes import MODES
from agent.patrol.config import (
    ButtonsConfig,
    CompanionConfig,
    PatrolCameraConfig,
    PatrolConfig,
)
from sync.failover import parse_hosts


def _camera_list() -> Any:
    from agent.vision.config import CameraList

    return CameraList


def _alarm_http() -> Any:
    from agent.vision.config import AlarmHttpConfig

    return AlarmHttpConfig


if TYPE_CHECKING:
    from agent.vision.config import AlarmHttpConfig, CameraList
else:
    # The camera gateway's models are imported when a file has these sections, not by every
    # device (issue 22): a patrol device never builds them. Validation is theirs, unchanged.
    CameraList = deferred(_camera_list)
    AlarmHttpConfig = deferred(_alarm_http)

DEVICE_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
ZONE_ID = r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$"
ModeName = Literal["normal", "holiday", "major_event", "emergency"]


class _Model(BaseModel):
    # defer_build: a model's validator is built when something is first validated, not when the
    # class is defined. `edge-agent run` validates the file in a forked child
    # (agent.config.isolated), so an idle device never builds one (issue 22: ~2.5 MB).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class DeviceConfig(_Model):
    """[device]: identity and where state lives (local-only: never changed remotely)."""

    id: Annotated[str, Field(pattern=DEVICE_ID)]
    role: Literal["patrol", "camera_gateway"]
    zones: list[Annotated[str, Field(pattern=ZONE_ID)]] = []
    state_dir: UserPath = Path("/var/lib/edge-agent")
    staff_id: str | None = None


class BrokerConfig(_Model):
    """[broker]: where and how to reach the central MQTT broker."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    # The nodes of a clustered broker ("host" or "host:port", port defaulting to `port`),
    # dialled in turn after a failure (sync/failover.py); empty: just host and port.
    hosts: tuple[str, ...] = ()
    tls: bool = False
    ca_file: UserPath | None = None
    cert_file: UserPath | None = None
    key_file: UserPath | None = None
    username: str | None = None
    password_file: UserPath | None = None
    protocol: Literal[3, 5] = 5
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0

    # `credential:NAME` (systemd LoadCredential=, config/credentials.py) becomes the file to read.
    @field_validator("ca_file", "cert_file", "key_file", "password_file")
    @classmethod
    def _credential(cls, value: Path | None) -> Path | None:
        return None if value is None else credentials.resolve(value, os.environ)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        parse_hosts(value, 1883)  # ValueError names the bad entry
        return value

    def nodes(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of every node to dial: `hosts`, or `host` and `port`."""
        return parse_hosts(self.hosts, self.port) or ((self.host, self.port),)

    @model_validator(mode="after")
    def _client_cert_pair(self) -> BrokerConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if (self.cert_file or self.ca_file) and not self.tls:
            raise ValueError("ca_file/cert_file need tls = true")
        return self


class SerialPortConfig(_Model):
    """[gps] / [nfc]: a serial port and its speed."""

    port: str
    baud: Annotated[int, Field(gt=0)] = 9600


class NfcConfig(SerialPortConfig):
    """[nfc]: PN532 over UART (HSU)."""

    baud: Annotated[int, Field(gt=0)] = 115200
    poll_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.2


class OpsKey(_Model):
    """One trusted operations key: id and base64url raw 32-byte Ed25519 public key."""

    kid: Annotated[str, Field(min_length=1, max_length=64)]
    public_key: str

    @field_validator("public_key")
    @classmethod
    def _raw_ed25519(cls, value: str) -> str:
        from sync.verify import b64url_decode

        try:
            raw = b64url_decode(value)
        except ValueError as exc:
            raise ValueError("public_key must be base64url") from exc
        if len(raw) != 32:
            raise ValueError("public_key must decode to 32 bytes (raw Ed25519)")
        return value


# The placeholder key of the shipped example configs (configs/*.toml). Nobody should trust it:
# `provision --ops-key` replaces it; check-config and doctor fail while it is trusted.
EXAMPLE_OPS_KEYS = frozenset({"o7zB1YpXvG8bK0cRj7oV1m3yOqk9Xx6iW2c5r1sTnEw"})


def example_keys(keys: list[OpsKey]) -> list[str]:
    """The kids of the trusted keys that are the shipped example key."""
    return [k.kid for k in keys if k.public_key in EXAMPLE_OPS_KEYS]


class TrustConfig(_Model):
    """[trust]: the keys that may sign downlink documents."""

    ops_keys: list[OpsKey] = []

    @field_validator("ops_keys")
    @classmethod
    def _unique(cls, keys: list[OpsKey]) -> list[OpsKey]:
        kids = [k.kid for k in keys]
        if len(set(kids)) != len(kids):
            raise ValueError("kid values must be unique")
        return keys


class SyncConfig(_Model):
    """[sync]: outbox and link tuning."""

    outbox_budget_bytes: Annotated[int, Field(ge=64 * 1024)] = 256 * 1024 * 1024
    inflight_window: Annotated[int, Field(ge=1, le=65535)] = 100
    # Share of the window low-priority (>= 2) messages may hold, so live alarms find room.
    low_priority_share: Annotated[float, Field(gt=0, le=1)] = 0.8
    puback_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    backoff_base_s: Annotated[float, Field(gt=0)] = 1.0
    backoff_cap_s: Annotated[float, Field(gt=0)] = 60.0
    flush_gate: bool = False  # §7: flush the hist backlog only while central/state is online
    # After a remote config switch: broker and devices must be fine for this long, or roll back.
    config_health_window_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class ModeProfile(_Model):
    """What one work mode changes (contract §6 'mode profiles')."""

    status_interval_s: Annotated[float, Field(gt=0)] = 60.0
    checkin_photo: bool = False  # every check-in takes a photo in this mode
    p0_incident_levels: list[Annotated[int, Field(ge=1, le=4)]] = []
    # The worker's safety (docs/patrol.md "Worker safety"); 0 = off, the default.
    lone_worker_every_s: Annotated[float, Field(ge=0, le=86400)] = 0.0  # "are you all right?"
    lone_worker_during: Literal["task", "always"] = "task"  # checks outside tasks too: always
    man_down_after_s: Annotated[float, Field(ge=0, le=86400)] = 0.0  # no movement, no touch
    safety_grace_s: Annotated[float, Field(ge=1, le=3600)] = 60.0  # the answer's time limit

    @model_validator(mode="after")
    def _safety_times(self) -> ModeProfile:
        for name in ("lone_worker_every_s", "man_down_after_s"):
            value = getattr(self, name)
            if 0 < value < 1:
                raise ValueError(f"{name}: 0 (off) or at least 1 second")
        every = self.lone_worker_every_s
        if every and every <= self.safety_grace_s:
            raise ValueError("lone_worker_every_s must be longer than safety_grace_s")
        return self


def _default_profiles() -> dict[ModeName, ModeProfile]:
    # Built without validation: these are constants (a test validates each one), and a running
    # agent that falls back to them must not build ModeProfile's validator for it (issue 22).
    make = ModeProfile.model_construct
    return {
        "normal": make(),
        "holiday": make(status_interval_s=30.0),
        "major_event": make(status_interval_s=15.0, p0_incident_levels=[1]),
        "emergency": make(status_interval_s=5.0, checkin_photo=True, p0_incident_levels=[1, 2]),
    }


_DEFAULT_PROFILES = _default_profiles()  # frozen models: safe to share


class ModesConfig(_Model):
    """[modes]: the default mode and each mode's profile (missing ones take defaults)."""

    default: ModeName = "normal"
    profiles: dict[ModeName, ModeProfile] = Field(default_factory=_default_profiles)

    def profile(self, name: str) -> ModeProfile:
        """The profile of `name`, falling back to the built-in one."""
        for source in (self.profiles, _DEFAULT_PROFILES):
            for key, prof in source.items():
                if key == name:
                    return prof
        return ModeProfile.model_construct()


class Config(_Model):
    """The whole agent config."""

    # Defaults are factories, not instances: an instance here would build each section's
    # validator when this module is imported (see _Model).
    device: DeviceConfig
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    gps: SerialPortConfig | None = None
    nfc: NfcConfig | None = None
    trust: TrustConfig = Field(default_factory=TrustConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    modes: ModesConfig = Field(default_factory=ModesConfig)
    # Patrol device (docs/patrol.md).
    buttons: ButtonsConfig | None = None
    camera: PatrolCameraConfig | None = None
    patrol: PatrolConfig = Field(default_factory=PatrolConfig)
    # The phone page (docs/companion.md).
    companion: CompanionConfig = Field(default_factory=CompanionConfig)
    # Camera gateway (docs/vision.md); detection thresholds per work mode live per camera.
    cameras: CameraList = []
    alarm_http: AlarmHttpConfig | None = None
    # Observability (docs/metrics.md).
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)


assert set(MODES) == {"normal", "holiday", "major_event", "emergency"}


def format_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn a pydantic error into (dotted key path, reason) pairs."""
    out: list[tuple[str, str]] = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((path, msg))
    return out


def parse(data: dict[str, Any]) -> Config:
    """Validate a config mapping; raise ConfigError with key paths."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


def load(path: Path) -> Config:
    """Read and validate a TOML config file; raise ConfigError naming every problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError([(str(path), "not valid TOML: nested too deeply")]) from None
    return parse(data)
