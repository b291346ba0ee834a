"""Pure rules over tracked objects and time: which (rule, zone) conditions hold at time t."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.vision.geometry import Box, Point, bottom_centre, point_in_polygon

PERSON = "person"


@dataclass(frozen=True, slots=True)
class Zone:
    """A polygon in captured-frame pixels and the rules that watch it."""

    name: str
    polygon: tuple[Point, ...]
    rules: frozenset[str]

    def contains(self, box: Box) -> bool:
        """Membership by the bottom centre of the box (where the object stands)."""
        return point_in_polygon(bottom_centre(box), self.polygon)


@dataclass(frozen=True, slots=True)
class CrowdParams:
    """min_people or more people in the zone for min_s seconds."""

    min_people: int = 5
    min_s: float = 10.0


@dataclass(frozen=True, slots=True)
class LoiteringParams:
    """A person in the zone for longer than min_s seconds."""

    min_s: float = 120.0


@dataclass(frozen=True, slots=True)
class WaterZoneParams:
    """Anyone in the zone for min_s, only inside the windows (minute of day [start, end)) if any."""

    windows: tuple[tuple[int, int], ...] = ()
    min_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ParkingParams:
    """A static object (of `labels`, or any non-person label when empty) kept for min_s."""

    min_s: float = 60.0
    labels: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MotionParams:
    """At least min_fraction of the zone moving for min_s seconds."""

    min_fraction: float = 0.02
    min_s: float = 1.0


@dataclass(frozen=True, slots=True)
class TamperParams:
    """Covered (dark, glare or flat), blurred or moved view, held for min_s seconds."""

    dark_max: float = 20.0
    bright_min: float = 250.0
    min_contrast: float = 6.0
    blur_ratio: float = 0.25
    moved_dissimilarity: float = 0.7
    min_s: float = 5.0
    relearn_s: float = 300.0


@dataclass(frozen=True, slots=True)
class RuleParams:
    """Every rule's thresholds in the active work mode."""

    crowd: CrowdParams = CrowdParams()
    loitering: LoiteringParams = LoiteringParams()
    water_zone: WaterZoneParams = WaterZoneParams()
    parking: ParkingParams = ParkingParams()
    motion: MotionParams = MotionParams()
    tamper: TamperParams = TamperParams()
    tamper_enabled: bool = True


@dataclass(frozen=True, slots=True)
class SceneObject:
    """A confirmed track (person) or held static object; `since` is when it appeared / stopped."""

    id: int
    label: str
    box: Box
    score: float
    since: float


@dataclass(frozen=True, slots=True)
class TamperMetrics:
    """Whole-frame measures; dissimilarity is 1 - correlation with the learnt view (None: yet)."""

    brightness: float
    contrast: float
    sharpness: float
    sharpness_ref: float | None
    dissimilarity: float | None


@dataclass(frozen=True, slots=True)
class Scene:
    """What one frame at time t (seconds) shows; minute_of_day is local wall time."""

    t: float
    minute_of_day: int
    people: tuple[SceneObject, ...] = ()
    statics: tuple[SceneObject, ...] = ()
    tamper: TamperMetrics | None = None
    zone_motion: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Marked:
    """A box to report: pixels, score and label."""

    box: Box
    score: float
    label: str


@dataclass(frozen=True, slots=True)
class Condition:
    """A rule holding for a zone (None: whole frame) since `since`, last observed at `seen`."""

    # seen: None means "now"; forwarded alarms are held between pushes, so theirs is earlier.
    # detail: for logs only (e.g. the tamper signs), never sent.

    rule: str
    zone: str | None
    count: int
    score: float
    boxes: tuple[Marked, ...]
    since: float
    detail: str = ""
    seen: float | None = None


Key = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class RuleMemory:
    """Since when each raw condition has held, and since when each track is in each zone."""

    since: Mapping[Key, float] = field(default_factory=dict)
    dwell: Mapping[tuple[int, str], float] = field(default_factory=dict)


def in_windows(minute: int, windows: Sequence[tuple[int, int]]) -> bool:
    """True when there are no windows or minute falls in one; a window may wrap midnight."""
    if not windows:
        return True
    for start, end in windows:
        if start == end:
            return True
        if start < end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):
            return True
    return False


def tamper_reasons(m: TamperMetrics, p: TamperParams) -> tuple[str, ...]:
    """Which tamper signs the metrics show: covered, blurred, moved."""
    reasons: list[str] = []
    if m.brightness <= p.dark_max or m.brightness >= p.bright_min or m.contrast <= p.min_contrast:
        reasons.append("covered")
    if m.sharpness_ref is not None and m.sharpness < p.blur_ratio * m.sharpness_ref:
        reasons.append("blurred")
    if m.dissimilarity is not None and m.dissimilarity >= p.moved_dissimilarity:
        reasons.append("moved")
    return tuple(reasons)


def _marks(objs: Iterable[SceneObject]) -> tuple[Marked, ...]:
    return tuple(Marked(o.box, o.score, o.label) for o in objs)


def _mean_score(objs: Sequence[SceneObject]) -> float:
    return sum(o.score for o in objs) / len(objs) if objs else 0.0


class _Builder:
    """Collects conditions and the memory of the next step."""

    def __init__(self, old: RuleMemory, t: float) -> None:
        self.old = old
        self.t = t
        self.since: dict[Key, float] = {}
        self.conditions: list[Condition] = []

    def held(self, key: Key, raw: bool, min_s: float) -> float | None:
        """Remember a raw condition; return since when it holds once it has held min_s."""
        if not raw:
            return None
        start = self.old.since.get(key, self.t)
        self.since[key] = start
        return start if self.t - start >= min_s else None

    def add(self, rule: str, zone: str, objects: Sequence[SceneObject], since: float) -> None:
        """A zone condition over `objects` (count, mean score, their boxes)."""
        self.conditions.append(
            Condition(rule, zone, len(objects), _mean_score(objects), _marks(objects), since)
        )


@dataclass(frozen=True, slots=True)
class _ZoneView:
    """What one zone's rules look at in one step."""

    scene: Scene
    zone: Zone
    inside: list[SceneObject]  # people in the zone
    entered: dict[int, float]  # person id -> when they entered the zone


def _crowd(v: _ZoneView, params: RuleParams, b: _Builder) -> None:
    n = len(v.inside)
    since = b.held(("crowd", v.zone.name), n >= params.crowd.min_people, params.crowd.min_s)
    if since is not None:
        b.add("crowd", v.zone.name, v.inside, since)


def _loitering(v: _ZoneView, params: RuleParams, b: _Builder) -> None:
    loiterers = [p for p in v.inside if v.scene.t - v.entered[p.id] >= params.loitering.min_s]
    if loiterers:
        b.add("loitering", v.zone.name, loiterers, min(v.entered[p.id] for p in loiterers))


def _water_zone(v: _ZoneView, params: RuleParams, b: _Builder) -> None:
    wz = params.water_zone
    raw = bool(v.inside) and in_windows(v.scene.minute_of_day, wz.windows)
    since = b.held(("water_zone", v.zone.name), raw, wz.min_s)
    if since is not None:
        b.add("water_zone", v.zone.name, v.inside, since)


def _parking(v: _ZoneView, params: RuleParams, b: _Builder) -> None:
    pk = params.parking
    parked = [
        s
        for s in v.scene.statics
        if v.zone.contains(s.box)
        and (s.label in pk.labels if pk.labels else s.label != PERSON)
        and v.scene.t - s.since >= pk.min_s
    ]
    if parked:
        b.add("parking", v.zone.name, parked, min(s.since for s in parked))


def _motion(v: _ZoneView, params: RuleParams, b: _Builder) -> None:
    frac = v.scene.zone_motion.get(v.zone.name, 0.0)
    mp = params.motion
    since = b.held(("motion", v.zone.name), frac >= mp.min_fraction, mp.min_s)
    if since is not None:
        b.conditions.append(Condition("motion", v.zone.name, 1, frac, (), since))


_ZONE_RULES = {
    "crowd": _crowd,
    "loitering": _loitering,
    "water_zone": _water_zone,
    "parking": _parking,
    "motion": _motion,
}


def evaluate(
    scene: Scene, zones: Sequence[Zone], params: RuleParams, memory: RuleMemory
) -> tuple[RuleMemory, tuple[Condition, ...]]:
    """Conditions holding at scene.t and the memory for the next call; no clock is read."""
    t = scene.t
    b = _Builder(memory, t)
    dwell: dict[tuple[int, str], float] = {}
    people = [p for p in scene.people if p.label == PERSON]
    for zone in zones:
        inside = [p for p in people if zone.contains(p.box)]
        for person in inside:
            dwell[(person.id, zone.name)] = memory.dwell.get((person.id, zone.name), t)
        view = _ZoneView(scene, zone, inside, {p.id: dwell[(p.id, zone.name)] for p in inside})
        for name, rule in _ZONE_RULES.items():
            if name in zone.rules:
                rule(view, params, b)
    if params.tamper_enabled and scene.tamper is not None:
        reasons = tamper_reasons(scene.tamper, params.tamper)
        since = b.held(("tamper", None), bool(reasons), params.tamper.min_s)
        if since is not None:
            b.conditions.append(Condition("tamper", None, 1, 1.0, (), since, ",".join(reasons)))
    return RuleMemory(since=b.since, dwell=dwell), tuple(b.conditions)
