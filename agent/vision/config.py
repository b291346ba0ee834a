"""Config models for `[[cameras]]` and `[alarm_http]`; pure pydantic, no OpenCV import."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.camera.spec import check_source
from agent.config.paths import UserPath
from agent.errors import ConfigError
from agent.vision import rules
from agent.vision.detector_config import (
    HogDetectorConfig,
    OnnxDetectorConfig,
    PeopleDetectorConfig,
    SsdDetectorConfig,
)
from agent.vision.events_config import CameraEventsConfig, MultipartConfig, read_secret
from agent.vision.geometry import polygon_area, self_intersection
from agent.vision.lifecycle import Timing

ModeName = Literal["normal", "holiday", "major_event", "emergency"]
ZoneRule = Literal["crowd", "loitering", "water_zone", "parking", "motion"]
Priority = Literal[0, 2]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CrowdThresholds(_Model):
    """min_people or more people in the zone for min_s seconds."""

    min_people: int = Field(default=5, ge=1)
    min_s: float = Field(default=10.0, ge=0)
    priority: Priority = 2


class LoiteringThresholds(_Model):
    """One person in the zone for longer than min_s seconds."""

    min_s: float = Field(default=120.0, ge=0)
    priority: Priority = 2


class WaterZoneThresholds(_Model):
    """Anyone in the zone for min_s; only in `hours` ("HH:MM-HH:MM", local time) when given."""

    hours: list[str] = []
    min_s: float = Field(default=0.0, ge=0)
    priority: Priority = 2

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        for window in value:
            if not _WINDOW.match(window):
                raise ValueError(f"{window!r} is not HH:MM-HH:MM")
        return value

    def windows(self) -> tuple[tuple[int, int], ...]:
        """The hours as (start, end) minutes of the day."""
        out = []
        for window in self.hours:
            m = _WINDOW.match(window)
            assert m is not None  # validated above
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            out.append((h1 * 60 + m1, min(h2 * 60 + m2, 1440)))
        return tuple(out)


class ParkingThresholds(_Model):
    """A static object of `labels` (empty: any non-person) staying min_s seconds."""

    min_s: float = Field(default=60.0, ge=0)
    labels: list[str] = []
    priority: Priority = 2


class MotionThresholds(_Model):
    """min_fraction of the zone area moving for min_s seconds."""

    min_fraction: float = Field(default=0.02, gt=0, le=1)
    min_s: float = Field(default=1.0, ge=0)
    priority: Priority = 2


class TamperThresholds(_Model):
    """Covered, blurred or moved view held for min_s seconds fires the whole-frame tamper rule."""

    # Covered: mean <= dark_max, mean >= bright_min (glare) or std <= min_contrast (flat).
    # Blurred: sharpness under blur_ratio x the learnt sharpness.
    # Moved: 1 - correlation with the learnt view >= moved_dissimilarity.

    dark_max: float = Field(default=20.0, ge=0, le=255)
    bright_min: float = Field(default=250.0, ge=0, le=256)
    min_contrast: float = Field(default=6.0, ge=0)
    blur_ratio: float = Field(default=0.25, ge=0, le=1)
    moved_dissimilarity: float = Field(default=0.7, gt=0, le=1)
    min_s: float = Field(default=5.0, ge=0)
    # A view that stays moved this long becomes the new reference, which ends the event.
    relearn_s: float = Field(default=300.0, gt=0)
    priority: Priority = 2


class EventTiming(_Model):
    """Updates at most every update_min_s; end after end_after_s absent; cooldown_s quiet."""

    update_min_s: float = Field(default=5.0, ge=0)
    end_after_s: float = Field(default=3.0, ge=0)
    cooldown_s: float = Field(default=60.0, ge=0)


class RuleThresholds(_Model):
    """Every rule's thresholds and priority, and the event timing, for one work mode."""

    crowd: CrowdThresholds = CrowdThresholds()
    loitering: LoiteringThresholds = LoiteringThresholds()
    water_zone: WaterZoneThresholds = WaterZoneThresholds()
    parking: ParkingThresholds = ParkingThresholds()
    motion: MotionThresholds = MotionThresholds()
    tamper: TamperThresholds = TamperThresholds()
    events: EventTiming = EventTiming()

    def priority(self, rule: str) -> int:
        """Contract §4: 2, or 0 where this mode's profile of the rule says so."""
        profile = getattr(self, rule, None)
        return int(getattr(profile, "priority", 2))

    def timing(self) -> Timing:
        """Lifecycle timing for the pure core."""
        e = self.events
        return Timing(e.update_min_s, e.end_after_s, e.cooldown_s)

    def params(self, tamper_enabled: bool) -> rules.RuleParams:
        """The frozen thresholds the pure rules take."""
        t = self.tamper
        return rules.RuleParams(
            crowd=rules.CrowdParams(self.crowd.min_people, self.crowd.min_s),
            loitering=rules.LoiteringParams(self.loitering.min_s),
            water_zone=rules.WaterZoneParams(self.water_zone.windows(), self.water_zone.min_s),
            parking=rules.ParkingParams(self.parking.min_s, frozenset(self.parking.labels)),
            motion=rules.MotionParams(self.motion.min_fraction, self.motion.min_s),
            tamper=rules.TamperParams(
                t.dark_max,
                t.bright_min,
                t.min_contrast,
                t.blur_ratio,
                t.moved_dissimilarity,
                t.min_s,
                t.relearn_s,
            ),
            tamper_enabled=tamper_enabled,
        )


class ZoneConfig(_Model):
    """A named polygon in pixels of the frame as captured, and the rules that watch it."""

    name: str = Field(pattern=_ID)
    polygon: list[tuple[int, int]] = Field(min_length=3, max_length=64)
    rules: list[ZoneRule] = Field(min_length=1)

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, value: list[tuple[int, int]]) -> list[tuple[int, int]]:
        if any(x < 0 or y < 0 or x > 20000 or y > 20000 for x, y in value):
            raise ValueError("polygon points must be pixels within 0..20000")
        points = [(float(x), float(y)) for x, y in value]
        if polygon_area(points) <= 0:
            raise ValueError("polygon has no area")
        crossing = self_intersection(points)
        if crossing is not None:
            # A figure-of-eight zone has no clear inside: rules would fire on the wrong side.
            i, j = crossing
            raise ValueError(
                f"polygon crosses itself: edge {i} ({value[i]}->{value[(i + 1) % len(value)]}) "
                f"meets edge {j} ({value[j]}->{value[(j + 1) % len(value)]}); "
                "list the points in order around the zone"
            )
        return value

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[ZoneRule]) -> list[ZoneRule]:
        if len(set(value)) != len(value):
            raise ValueError("a rule is listed twice")
        return value


class MotionConfig(_Model):
    """Background subtraction at low resolution; min_area is a fraction of the frame."""

    # background_s: about how long something that stops keeps counting as motion.

    width: int = Field(default=160, ge=32, le=1280)
    var_threshold: float = Field(default=25.0, gt=0)
    background_s: float = Field(default=10.0, gt=0)
    min_area: float = Field(default=0.002, gt=0, le=1)
    full_frame_fraction: float = Field(default=0.4, gt=0, le=1)


class TrackerConfig(_Model):
    """Tracker matching, confirmation and re-detection of live tracks without motion."""

    iou_min: float = Field(default=0.3, gt=0, le=1)
    max_age_s: float = Field(default=2.5, gt=0)
    min_hits: int = Field(default=2, ge=1)
    still_px: float = Field(default=6.0, ge=0)
    recheck_s: float = Field(default=1.0, gt=0)


class StaticConfig(_Model):
    """Held static objects: settled for settle_s, then kept while they differ from the scene."""

    # A settled blob is held when changed_fraction of its box differs from the empty scene by
    # more than diff_level grey levels; it stays while keep_fraction of those pixels still do.

    settle_s: float = Field(default=3.0, ge=0)
    diff_level: int = Field(default=25, ge=1, le=255)
    changed_fraction: float = Field(default=0.2, gt=0, le=1)
    keep_fraction: float = Field(default=0.5, gt=0, le=1)
    release_s: float = Field(default=1.0, ge=0)
    reference_s: float = Field(default=60.0, gt=0)


class SnapshotConfig(_Model):
    """The start event's JPEG: quality and largest side in pixels."""

    quality: int = Field(default=80, ge=30, le=95)
    max_side: int = Field(default=1280, ge=160, le=4096)
    draw_zones: bool = True


class BackoffConfig(_Model):
    """Reopen delays: initial_s doubling up to max_s, with jitter."""

    initial_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=60.0, gt=0)


class CameraConfig(_Model):
    """One `[[cameras]]` entry: the source, its frame rate cap, zones, detector and thresholds."""

    id: str = Field(pattern=_ID)
    source: str
    fps: float = Field(default=5.0, gt=0, le=120)
    width: int | None = Field(default=None, ge=16, le=8192)
    height: int | None = Field(default=None, ge=16, le=8192)
    zones: list[ZoneConfig] = []
    tamper: bool = True
    detector: Annotated[
        SsdDetectorConfig | HogDetectorConfig | PeopleDetectorConfig | OnnxDetectorConfig,
        Field(discriminator="kind"),
    ] = SsdDetectorConfig()
    motion: MotionConfig = MotionConfig()
    tracker: TrackerConfig = TrackerConfig()
    static: StaticConfig = StaticConfig()
    snapshot: SnapshotConfig = SnapshotConfig()
    backoff: BackoffConfig = BackoffConfig()
    events: CameraEventsConfig | None = None
    stall_s: float = Field(default=10.0, gt=0)
    queue_size: int = Field(default=2, ge=1, le=64)
    thresholds: RuleThresholds = RuleThresholds()
    # Per work mode, partial overrides of `thresholds`: {"emergency": {"crowd": {"min_people": 3}}}.
    modes: dict[ModeName, dict[str, dict[str, Any]]] = {}

    _source = field_validator("source")(check_source)

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique within a camera")
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        for mode in self.modes:
            try:
                self.thresholds_for(mode)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"modes.{mode}.{where}: {err['msg']}") from None
        return self

    def thresholds_for(self, mode: str) -> RuleThresholds:
        """`thresholds` with the mode's overrides applied (unknown modes: no override)."""
        override = {str(k): v for k, v in self.modes.items()}.get(mode)
        if not override:
            return self.thresholds
        merged = self.thresholds.model_dump()
        for section, values in override.items():
            if not isinstance(values, dict) or section not in merged:
                raise ValueError(f"modes.{mode}.{section}: not a thresholds section")
            merged[section] = {**merged[section], **values}
        return RuleThresholds.model_validate(merged)

    def zone_rules(self) -> set[str]:
        """Every rule some zone of this camera uses."""
        return {r for z in self.zones for r in z.rules}


def _unique_ids(cameras: list[CameraConfig]) -> list[CameraConfig]:
    ids = [c.id for c in cameras]
    if len(set(ids)) != len(ids):
        raise ValueError("camera ids must be unique")
    return cameras


# What the main config uses for its `cameras` key: `cameras: CameraList = []`.
CameraList = Annotated[list[CameraConfig], AfterValidator(_unique_ids)]


class ForwardingConfig(_Model):
    """How camera alarms (pushed or pulled) become events: hold, update rate, cool-down, urgency."""

    hold_s: float = Field(default=10.0, gt=0)
    update_min_s: float = Field(default=5.0, ge=0)
    cooldown_s: float = Field(default=30.0, ge=0)
    # Per work mode, the camera event types (lower case) sent at priority 0.
    urgent: dict[ModeName, list[str]] = {}


class AlarmHttpConfig(ForwardingConfig):
    """`[alarm_http]`: the endpoint IP cameras push alarms to (token-authenticated)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: UserPath | None = None
    allow_query_token: bool = False
    max_body_bytes: int = Field(default=65536, ge=256, le=1048576)
    max_header_bytes: int = Field(default=8192, ge=1024, le=65536)
    read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_connections: int = Field(default=16, ge=1, le=1024)
    # TLS: serve HTTPS with this certificate (chain) and key; both or neither.
    cert_file: Path | None = None
    key_file: Path | None = None
    # Push-only cameras (not analysed here) that may post; configured cameras always may.
    cameras: list[Annotated[str, Field(pattern=_ID)]] = []
    multipart: MultipartConfig = MultipartConfig()

    @model_validator(mode="after")
    def _one_token(self) -> AlarmHttpConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token and token_file")
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("token must be at least 16 characters")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    def load_token(self, base_dir: Path | None = None) -> str:
        """The token, read from token_file if so configured; ConfigError when unusable."""
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        token = read_secret(self.token_file, base_dir, "alarm_http.token_file")
        if len(token) < 16:
            raise ConfigError([("alarm_http.token_file", "token must be at least 16 characters")])
        return token


def load_cameras(data: list[dict[str, Any]]) -> list[CameraConfig]:
    """Validate raw `[[cameras]]` tables; ConfigError lists every problem with its key path."""
    try:
        return _CamerasDoc.model_validate({"cameras": data}).cameras
    except ValidationError as exc:
        raise ConfigError(
            [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        ) from exc


class _CamerasDoc(_Model):
    cameras: CameraList = []
