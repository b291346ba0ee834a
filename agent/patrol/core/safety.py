"""The worker's safety rules: man-down, lone-worker checks, the trail. Pure: time passed in.

`SafetyWatch` is told of fixes (`on_fix`), touches of the device (`touch`) and answers to its
prompt (`answer`), and on every `tick` decides whether to prompt the worker ("are you all
right?") or, when a prompt went unanswered past its grace, to raise an alarm. `now_ms` is a
monotonic millisecond clock (the driver's CLOCK_BOOTTIME); trail times are the fixes' own UTC
times (contract §4 `trail`: `[[lat, lon, ts], …]`, newest last, at most 20).

Rules (docs/patrol.md "Worker safety"):
- Lone-worker check: every `check_every_ms` during a running task (or always when
  `check_always`), a prompt; no answer within `grace_ms` -> `lone_worker`.
- Man-down: during a running task, no movement and no touch for `still_ms` -> a prompt; no
  answer within `grace_ms` -> `man_down`. Movement is a fix farther from the last anchor than
  `radius_m` plus both fixes' accuracy, so GPS jitter of a standing worker is not movement.
  At a checkpoint of a running task the worker is meant to stand still for its dwell: the
  checkpoint's dwell is added to `still_ms` (`Context.dwell_ms`). Without a usable fix the
  stillness cannot be judged: the man-down clock is held at zero unless `without_fix`.
  After a `man_down` alarm no second one comes until the worker moves or touches the device.
- One prompt at a time; only an answer ends it (movement does not: a worker being carried
  moves too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.patrol.core.tasks import Task
from firmware_bridge.geo import distance_m

Kind = Literal["man_down", "lone_worker"]
TrailPoint = tuple[float, float, int]  # lat, lon, UTC ms of the fix
TRAIL_MAX = 20


@dataclass(frozen=True, slots=True)
class SafetyRules:
    """The rules in force now (the active mode's profile and the `[patrol]` section)."""

    check_every_ms: int = 0  # lone-worker check interval; 0: off
    check_always: bool = False  # also outside running tasks
    still_ms: int = 0  # man-down: no movement and no touch this long; 0: off
    grace_ms: int = 60_000  # how long a prompt waits for its answer
    radius_m: float = 10.0  # movement beyond this plus both fixes' accuracy
    without_fix: bool = False  # man-down also counts while there is no usable fix (indoors)
    trail_every_ms: int = 15_000  # a trail point at most this often (0: every fix)

    @property
    def active(self) -> bool:
        """Whether any rule is on."""
        return self.check_every_ms > 0 or self.still_ms > 0


@dataclass(frozen=True, slots=True)
class Context:
    """What the driver knows at a tick: a running task, a usable fix, a checkpoint's dwell."""

    on_task: bool
    has_fix: bool
    dwell_ms: int = 0  # dwell of the running task's checkpoint the worker stands at


@dataclass(frozen=True, slots=True)
class Prompt:
    """Ask the worker now; `deadline_ms` is when the alarm goes without an answer."""

    kind: Kind
    asked_ms: int
    deadline_ms: int


@dataclass(frozen=True, slots=True)
class Alarm:
    """A prompt went unanswered: raise `kind` with the trail (newest last)."""

    kind: Kind
    asked_ms: int
    trail: tuple[TrailPoint, ...]


@dataclass(frozen=True, slots=True)
class Answered:
    """The worker answered a prompt (`by`: "button" or "page") after `waited_ms`."""

    kind: Kind
    by: str
    waited_ms: int


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Where the worker stands: the mean of the fixes since the last movement.

    A mean wanders less than any single fix, so a standing worker's jitter is measured
    against a steadier point (half the spread of fix-to-fix differences, roughly).
    """

    lat: float
    lon: float
    acc_m: float
    n: int = 1

    def add(self, lat: float, lon: float, acc_m: float) -> _Anchor:
        n = self.n + 1
        return _Anchor(
            self.lat + (lat - self.lat) / n,
            self.lon + (lon - self.lon) / n,
            self.acc_m + (acc_m - self.acc_m) / n,
            n,
        )


def parse_trail(raw: object) -> tuple[TrailPoint, ...]:
    """A saved trail back from JSON; malformed points are left out, at most TRAIL_MAX kept."""
    if not isinstance(raw, list):
        return ()
    out: list[TrailPoint] = []
    for p in raw:
        if (
            isinstance(p, list)
            and len(p) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in p)
            and -90 <= p[0] <= 90
            and -180 <= p[1] <= 180
        ):
            out.append((float(p[0]), float(p[1]), int(p[2])))
    return tuple(out[-TRAIL_MAX:])


class SafetyWatch:
    """The state of the safety rules for one device (see the module docstring)."""

    def __init__(self, trail: Iterable[TrailPoint] = ()) -> None:
        self._trail: list[TrailPoint] = list(trail)[-TRAIL_MAX:]
        self._anchor: _Anchor | None = None
        self._still_since: int | None = None  # last movement, touch or answer (None: not yet)
        self._checked_at: int | None = None  # last lone-worker check or start of eligibility
        self._downed = False  # a man_down alarm was raised; none again until moved/touched
        self._latest: TrailPoint | None = None
        self.pending: Prompt | None = None

    @property
    def trail(self) -> tuple[TrailPoint, ...]:
        """The kept trail, newest last."""
        return tuple(self._trail)

    def trail_now(self) -> tuple[TrailPoint, ...]:
        """The trail with the newest fix at its end (for an alarm raised now)."""
        out = list(self._trail)
        if self._latest is not None and (not out or self._latest[2] > out[-1][2]):
            out.append(self._latest)
        return tuple(out[-TRAIL_MAX:])

    def on_fix(
        self, lat: float, lon: float, acc_m: float, utc_ms: int, now_ms: int, rules: SafetyRules
    ) -> bool:
        """A usable fix; True when the kept trail changed (worth saving)."""
        self._latest = (lat, lon, utc_ms)
        a = self._anchor
        if a is None or distance_m(a.lat, a.lon, lat, lon) > rules.radius_m + a.acc_m + acc_m:
            if a is not None:
                self._moved(now_ms)
            self._anchor = _Anchor(lat, lon, acc_m)
        else:
            self._anchor = a.add(lat, lon, acc_m)
        last = self._trail[-1] if self._trail else None
        if last is not None and utc_ms <= last[2]:
            return False  # a replayed or older fix: the trail keeps time order
        if last is None or utc_ms - last[2] >= rules.trail_every_ms:
            self._trail = [*self._trail, (lat, lon, utc_ms)][-TRAIL_MAX:]
            return True
        return False

    def touch(self, now_ms: int) -> None:
        """The worker used the device (a button, a tag, the page): alive and not still."""
        self._moved(now_ms)

    def _moved(self, now_ms: int) -> None:
        self._still_since = now_ms
        self._downed = False

    def answer(self, now_ms: int, by: str) -> Answered | None:
        """The worker says they are all right; None when nothing was asked."""
        p = self.pending
        if p is None:
            return None
        self.pending = None
        self._moved(now_ms)
        if p.kind == "lone_worker":
            self._checked_at = now_ms
        return Answered(p.kind, by, now_ms - p.asked_ms)

    def cancel(self, now_ms: int) -> Prompt | None:
        """End a prompt without an answer (the worker raised an SOS instead); the one ended."""
        p, self.pending = self.pending, None
        self._moved(now_ms)
        self._checked_at = now_ms
        return p

    def tick(self, now_ms: int, rules: SafetyRules, ctx: Context) -> Prompt | Alarm | None:
        """A new prompt, an alarm for a prompt past its grace, or None."""
        if self.pending is not None:
            p = self.pending
            if now_ms < p.deadline_ms:
                return None
            self.pending = None
            if p.kind == "man_down":
                self._downed = True
            else:
                self._checked_at = now_ms
            return Alarm(p.kind, p.asked_ms, self.trail_now())
        kind = self._due(now_ms, rules, ctx)
        if kind is None:
            return None
        self.pending = Prompt(kind, now_ms, now_ms + rules.grace_ms)
        return self.pending

    def _due(self, now_ms: int, rules: SafetyRules, ctx: Context) -> Kind | None:
        # Each clock restarts while its rule does not apply, so it counts from when it does.
        judged = rules.still_ms > 0 and ctx.on_task and (ctx.has_fix or rules.without_fix)
        if not judged or self._still_since is None:
            self._still_since = now_ms
        elif not self._downed and now_ms - self._still_since >= rules.still_ms + ctx.dwell_ms:
            return "man_down"
        checking = rules.check_every_ms > 0 and (ctx.on_task or rules.check_always)
        if not checking or self._checked_at is None:
            self._checked_at = now_ms
        elif now_ms - self._checked_at >= rules.check_every_ms:
            return "lone_worker"
        return None


def dwell_here(
    spots: Sequence[tuple[float, float, float, float]], lat: float, lon: float, acc_m: float
) -> int:
    """The longest dwell (ms) of the checkpoints (lat, lon, radius_m, dwell_s) the worker is in.

    In means within the radius plus the fix's accuracy: a worker standing at the checkpoint
    is not taken for one who fell there because the fix wandered outside.
    """
    best = 0.0
    for c_lat, c_lon, radius, dwell_s in spots:
        if distance_m(c_lat, c_lon, lat, lon) <= radius + acc_m:
            best = max(best, dwell_s)
    return int(best * 1000)


def on_duty(tasks: Sequence[Task], ended: Sequence[str], now_ms: int, time_ok: bool) -> list[Task]:
    """The running tasks: in their window (every one while time is not known) and not ended."""
    return [t for t in tasks if t.id not in ended and t.is_active(now_ms, time_ok)]


def spots_of(tasks: Sequence[Task]) -> list[tuple[float, float, float, float]]:
    """(lat, lon, radius_m, dwell_s) of every checkpoint of `tasks`, for dwell_here."""
    return [(c.lat, c.lon, c.radius_m, c.dwell_s) for t in tasks for c in t.checkpoints]
