"""The worker's safety on the device: the pure SafetyWatch wired to time, the outbox and people.

`SafetyGuard` feeds the rules (agent/patrol/core/safety.py) with fixes, touches and answers,
ticks them every `tick_s`, and acts on what they decide: a prompt plays the buzzer/LED
"prompt" pattern (repeated while it waits) and goes to the companion page (a `prompt`
notice on its event stream); an answer is stored as a `notice` {"type": "safety_check"} so
central sees the check happened; an unanswered prompt becomes an `alarm` (priority 0) of
type `man_down` or `lone_worker` with the trail. The trail is kept in
`state_dir/safety.json`, so it survives a restart (docs/patrol.md "Worker safety").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config.model import ModeProfile
from agent.errors import StoreError
from agent.patrol.config import PatrolConfig
from agent.patrol.core import PatrolEngine
from agent.patrol.core.safety import (
    Alarm,
    Context,
    Prompt,
    SafetyRules,
    SafetyWatch,
    TrailPoint,
    dwell_here,
    on_duty,
    parse_trail,
    spots_of,
)
from agent.patrol.notices import Notices
from agent.patrol.reporter import Reporter, position
from firmware_bridge.types import Fix
from sync.envelope import TimeStamp
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

STATE_FILE = "safety.json"
REPEAT_S = 10.0  # the prompt pattern is played again this often while the prompt waits
IDLE = Context(on_task=False, has_fix=False)
UNKNOWN_ACC_M = 15.0  # a fix that gives no accuracy: assume a poor one (never "moved" by jitter)


def work_context(
    engine: PatrolEngine, stamp: TimeStamp, fix: Fix | None, acc: float | None
) -> Context:
    """What the rules need to know now: a running task, a usable fix, a checkpoint's dwell."""
    ended = [s.task_id for s in engine.status() if s.ended is not None]
    duty = on_duty(engine.tasks.tasks, ended, stamp.ts, stamp.time_ok)
    if fix is None or fix.lat is None or fix.lon is None:
        return Context(on_task=bool(duty), has_fix=False)
    dwell = dwell_here(spots_of(duty), fix.lat, fix.lon, acc or 0.0)
    return Context(on_task=bool(duty), has_fix=True, dwell_ms=dwell)


def rules_of(profile: ModeProfile, cfg: PatrolConfig) -> SafetyRules:
    """The rules in force: the mode profile's timings and the [patrol] section's guards."""
    return SafetyRules(
        check_every_ms=int(profile.lone_worker_every_s * 1000),
        check_always=profile.lone_worker_during == "always",
        still_ms=int(profile.man_down_after_s * 1000),
        grace_ms=int(profile.safety_grace_s * 1000),
        radius_m=cfg.man_down_radius_m,
        without_fix=cfg.man_down_without_fix,
        trail_every_ms=int(cfg.trail_every_s * 1000),
    )


class SafetyGuard:
    """One device's safety checks; `run()` is its loop, `save()` keeps the trail."""

    def __init__(
        self,
        *,
        reporter: Reporter,
        mono_ms: Callable[[], int],
        state_dir: Path,
        profile: Callable[[], ModeProfile],
        settings: PatrolConfig,
        context: Callable[[], Context],
        here: Callable[[], tuple[Fix | None, float | None]],
        notices: Notices,
    ) -> None:
        self._rep, self._mono, self._profile, self._cfg = reporter, mono_ms, profile, settings
        self._path = state_dir / STATE_FILE
        self._context, self._here, self._notices = context, here, notices
        self.watch = SafetyWatch()
        self._dirty = False
        self._fed: Fix | None = None  # the last fix handed to the rules
        self._played_ms = 0
        self._unstored: list[tuple[str, dict[str, Any]]] = []  # refused by the outbox: retried
        self.stats: dict[str, int] = {"prompts": 0, "answered": 0, "alarms": 0}

    def rules(self) -> SafetyRules:
        """The rules of the active mode now."""
        return rules_of(self._profile(), self._cfg)

    # ----- state ------------------------------------------------------------------------------
    async def restore(self) -> None:
        """Load the kept trail (a missing or malformed file: an empty one)."""
        saved = await asyncio.to_thread(read_json, self._path, None)
        trail = parse_trail(saved.get("trail") if isinstance(saved, dict) else None)
        self.watch = SafetyWatch(trail)

    async def save(self) -> None:
        """Write the trail if it changed; a failure is logged and retried at the next point."""
        if not self._dirty:
            return
        doc = {"trail": [list(p) for p in self.watch.trail]}
        try:
            await asyncio.to_thread(write_json, self._path, doc)
        except OSError as exc:
            self._rep.error(f"safety trail not saved: {exc}")
            return
        self._dirty = False

    # ----- inputs -----------------------------------------------------------------------------
    def on_fix(self, fix: Fix, acc: float | None) -> None:
        """The newest fix past the outlier gate, with the accuracy the check-in rule uses.

        The same fix handed again (no newer one passed the gate) is ignored.
        """
        if fix.lat is None or fix.lon is None or fix.utc_ms is None or fix is self._fed:
            return
        self._fed = fix
        accuracy = UNKNOWN_ACC_M if acc is None else acc
        if self.watch.on_fix(fix.lat, fix.lon, accuracy, fix.utc_ms, self._mono(), self.rules()):
            self._dirty = True

    def touch(self) -> None:
        """The worker used the device (a button, a tag, the page)."""
        self.watch.touch(self._mono())

    @property
    def asking(self) -> bool:
        """Whether a prompt waits for the worker's answer."""
        return self.watch.pending is not None

    def trail(self) -> list[list[float]]:
        """The trail for an alarm raised now: [[lat, lon, ts], …], newest last."""
        return _wire(self.watch.trail_now())

    async def answer(self, by: str) -> bool:
        """The worker says they are all right (by "button" or "page"); False if nothing asked."""
        done = self.watch.answer(self._mono(), by)
        if done is None:
            return False
        log.info("safety check %s answered by %s after %d ms", done.kind, by, done.waited_ms)
        self._rep.signal("ok")
        self._notices.publish({"type": "prompt_end", "kind": done.kind, "outcome": "answered"})
        body = {
            "type": "safety_check",
            "check": done.kind,
            "answer": by,
            "waited_s": round(done.waited_ms / 1000, 1),
            **position(*self._here()),
        }
        await self._store("notice", body)
        self.stats["answered"] += 1  # counted once stored (or queued to retry): tests read both
        return True

    def sos_raised(self) -> None:
        """An SOS answers any prompt: it ends without a second alarm."""
        ended = self.watch.cancel(self._mono())
        if ended is not None:
            self._notices.publish({"type": "prompt_end", "kind": ended.kind, "outcome": "sos"})

    def view(self) -> dict[str, Any] | None:
        """The prompt waiting now (for the page's state), or None."""
        p = self.watch.pending
        if p is None:
            return None
        left = max(0, p.deadline_ms - self._mono())
        return {"kind": p.kind, "left_s": round(left / 1000, 1)}

    # ----- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Tick every `tick_s` (supervised loop `patrol-safety`)."""
        while True:
            await asyncio.sleep(self._cfg.tick_s)
            await self.step()

    async def step(self) -> None:
        """One tick: retry what waits, judge the rules, play a waiting prompt, keep the trail."""
        for kind, body in list(self._unstored):
            self._unstored.remove((kind, body))
            await self._store(kind, body)
        now, rules = self._mono(), self.rules()
        # Off (the default) and nothing asked: no need to look at the tasks and the fix.
        idle = not rules.active and self.watch.pending is None
        got = self.watch.tick(now, rules, IDLE if idle else self._context())
        if isinstance(got, Prompt):
            self._ask(got, now)
        elif isinstance(got, Alarm):
            await self._alarm(got)
        elif self.watch.pending is not None and now - self._played_ms >= REPEAT_S * 1000:
            self._played_ms = now
            self._rep.signal("prompt")
        await self.save()

    def _ask(self, p: Prompt, now: int) -> None:
        self.stats["prompts"] += 1
        self._played_ms = now
        grace_s = round((p.deadline_ms - p.asked_ms) / 1000, 1)
        log.warning("safety check %s: asking the worker (%s s to answer)", p.kind, grace_s)
        self._rep.signal("prompt")
        self._notices.publish({"type": "prompt", "kind": p.kind, "left_s": grace_s})

    async def _alarm(self, a: Alarm) -> None:
        log.warning("safety check %s not answered: raising the alarm", a.kind)
        self._notices.publish({"type": "prompt_end", "kind": a.kind, "outcome": "alarm"})
        self._rep.signal("sos")
        body = {
            "type": a.kind,
            **position(*self._here()),
            "note": "no answer to the device's check",
            "trail": _wire(a.trail),
        }
        await self._store("alarm", body)
        self.stats["alarms"] += 1  # counted once stored (or queued to retry)

    async def _store(self, kind: str, body: dict[str, Any]) -> None:
        try:
            await self._rep.store(kind, body)
        except StoreError as exc:
            # An alarm is never dropped: it waits here and is tried again every tick.
            self._rep.error(f"safety {kind} not stored yet: {exc}")
            self._unstored.append((kind, body))


def _wire(trail: tuple[TrailPoint, ...]) -> list[list[float]]:
    return [[lat, lon, ts] for lat, lon, ts in trail]
