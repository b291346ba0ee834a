"""PatrolEngine: pure patrol state (task set + progress) fed fixes, tags, presses and ticks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.patrol.core.decisions import (
    CheckIn,
    Decision,
    Ended,
    Method,
    NoCheckpointInReach,
    Progress,
    TagIgnored,
    TaskStatus,
    UnknownTag,
)
from agent.patrol.core.geofence import (
    CheckinParams,
    FixOrder,
    Gate,
    accuracy_m,
    is_evidence,
    is_live,
    judge,
    reach_ms,
    step_gate,
    step_order,
    step_run,
)
from agent.patrol.core.progress import TaskProgress, dump_snapshot, load_snapshot
from agent.patrol.core.tasks import Checkpoint, Task, TaskSet, normalize_uid
from firmware_bridge.geo import distance_m
from firmware_bridge.types import Fix

log = logging.getLogger(__name__)


def _unresolved(task: Task, pr: TaskProgress) -> list[Checkpoint]:
    return [cp for cp in task.checkpoints if not pr.resolved(cp.id)]


@dataclass
class EngineCounters:
    """What the engine saw since start (the status message's `engine` section)."""

    fixes: int = 0
    not_evidence: int = 0  # no position, or no accuracy to judge it by
    late: int = 0  # arrived after a newer fix
    outliers: int = 0  # turned away by the gate (multipath jumps)
    time_resets: int = 0  # the fix time went backwards: runs restarted


class PatrolEngine:
    """Decides check-ins and progress events; no I/O, no clock: time is always passed in."""

    def __init__(self, tasks: TaskSet | None = None, params: CheckinParams | None = None) -> None:
        self.params = params or CheckinParams()
        self._tasks = TaskSet()
        self._progress: dict[str, TaskProgress] = {}
        self._gate = Gate()
        self._order = FixOrder()
        self.counters = EngineCounters()
        if tasks is not None:
            self.replace_tasks(tasks, 0, False)

    @property
    def tasks(self) -> TaskSet:
        """The task set in force."""
        return self._tasks

    @property
    def accepted(self) -> Fix | None:
        """The newest fix the outlier gate accepted (None before the first): a multipath jump
        never becomes it, so position-keeping such as the safety trail follows this one."""
        return self._gate.anchor

    # ---- inputs -------------------------------------------------------------------------------

    def on_fix(self, fix: Fix, now_ms: int, time_ok: bool) -> list[Decision]:
        """Judge one GPS fix (any order, any validity); returns check-ins and progress events."""
        out = self._settle(now_ms, time_ok)
        self.counters.fixes += 1
        if not is_evidence(fix) or accuracy_m(fix, self.params) is None:
            self.counters.not_evidence += 1
            return out
        self._order, ready_fixes, outcome = step_order(self._order, fix, self.params)
        if outcome == "late":
            self.counters.late += 1
        elif outcome == "reset":
            self.counters.time_resets += 1
            self._gate = Gate()
            for pr in self._progress.values():
                pr.runs.clear()
                pr.seen_in.clear()
                pr.out_at.clear()
        for ready in ready_fixes:
            self._gate, accepted = step_gate(self._gate, ready, self.params)
            if not accepted:
                self.counters.outliers += 1
            for good in accepted:
                out += self._judge(good, now_ms, time_ok)
        return out

    def on_tag(self, uid: str, fix: Fix | None, now_ms: int, time_ok: bool) -> list[Decision]:
        """An NFC scan: checks in at once where the tag is listed; fix = the current one or None."""
        out = self._settle(now_ms, time_ok)
        tag = normalize_uid(uid)
        matched = False
        for task in self._tasks.tasks:
            listing = [cp for cp in task.checkpoints if tag in cp.tags]
            if not listing:
                continue
            matched = True
            pr = self._progress[task.id]
            # The earliest unresolved one: a loop's start and end may share a tag.
            target = next((cp for cp in listing if not pr.resolved(cp.id)), None)
            if target is None:
                out.append(TagIgnored(tag, task.id, listing[0].id, "resolved"))
            elif not task.is_active(now_ms, time_ok):
                out.append(TagIgnored(tag, task.id, target.id, "not_active"))
            else:
                out += self._check_in(task, pr, target, "nfc", fix, now_ms, tag_uid=tag)
        if not matched:
            log.info("tag %s is not a checkpoint of any task", tag)
            out.append(UnknownTag(tag))
        return out

    def on_manual(self, fix: Fix | None, now_ms: int, time_ok: bool) -> list[Decision]:
        """The check-in button: the nearest checkpoint within reach, always with a photo."""
        out = self._settle(now_ms, time_ok)
        open_tasks = [
            (task, pr, left)
            for task in self._tasks.tasks
            if not (pr := self._progress[task.id]).ended
            and task.is_active(now_ms, time_ok)
            and (left := _unresolved(task, pr))
        ]
        if not open_tasks:
            return [*out, NoCheckpointInReach("no_active_task")]
        acc = accuracy_m(fix, self.params) if fix is not None and is_evidence(fix) else None
        if fix is None or acc is None or acc > self.params.manual_max_acc_m:
            return out + self._manual_blind(open_tasks, fix, now_ms)
        lat, lon = fix.lat, fix.lon
        assert lat is not None and lon is not None  # is_evidence checked them
        best: tuple[float, Task, TaskProgress, Checkpoint] | None = None
        nearest: tuple[float, Task, Checkpoint] | None = None
        for task, pr, left in open_tasks:
            dists = [(distance_m(lat, lon, cp.lat, cp.lon), cp) for cp in left]
            near = min(dists, key=lambda dc: dc[0])
            if nearest is None or near[0] < nearest[0]:
                nearest = (near[0], task, near[1])
            reach = [dc for dc in dists if dc[0] <= dc[1].radius_m + self.params.manual_k * acc]
            if not reach:
                continue
            # A sequence task prefers its next checkpoint when in reach: a press is not a skip.
            pick = reach[0] if task.order == "sequence" and reach[0][1] is left[0] else None
            pick = pick or min(reach, key=lambda dc: dc[0])
            if best is None or pick[0] < best[0]:
                best = (pick[0], task, pr, pick[1])
        if best is None:
            assert nearest is not None
            return [
                *out,
                NoCheckpointInReach("out_of_reach", nearest[1].id, nearest[2].id, nearest[0]),
            ]
        _, task, pr, cp = best
        return out + self._check_in(task, pr, cp, "manual", fix, now_ms, needs_photo=True)

    def tick(self, now_ms: int, time_ok: bool) -> list[Decision]:
        """Time passes: windows that ended raise checkpoint_missed and overdue."""
        return self._settle(now_ms, time_ok)

    def replace_tasks(self, tasks: TaskSet, now_ms: int, time_ok: bool) -> list[Decision]:
        """Install a new task set; check-ins (and misses) of ids that still exist are kept."""
        progress: dict[str, TaskProgress] = {}
        for task in tasks.tasks:
            prev = self._progress.get(task.id)
            old = self._tasks.task(task.id)
            pr = TaskProgress()
            if prev is not None and old is not None:
                pr.started, pr.ended = prev.started, prev.ended
                for cp in task.checkpoints:
                    if cp.id in prev.checked:
                        pr.checked[cp.id] = prev.checked[cp.id]
                    if cp.id in prev.missed:
                        pr.missed[cp.id] = prev.missed[cp.id]
                    # A dwell run only carries over when the place and rule are unchanged.
                    if old.checkpoint(cp.id) == cp:
                        pr.carry_live(prev, cp.id)
            progress[task.id] = pr
        self._tasks, self._progress = tasks, progress
        return self._settle(now_ms, time_ok)

    # ---- views --------------------------------------------------------------------------------

    def dwelling(self, now_ms: int, time_ok: bool) -> list[tuple[str, Checkpoint]]:
        """(task id, checkpoint) of each live confirmed run that can still check in, task order.

        Active tasks only, and in a sequence only the next checkpoint (GPS never skips ahead).
        A driver uses it to get ready for a check-in about to come (e.g. take its photo early).
        """
        out = []
        last = self._order.last_ms
        for task in self._tasks.tasks:
            pr = self._progress[task.id]
            if pr.ended or not task.is_active(now_ms, time_ok):
                continue
            left = _unresolved(task, pr)
            for cp in left[:1] if task.order == "sequence" else left:
                run = pr.runs.get(cp.id)
                if (
                    run is not None
                    and run.confirmed
                    and last is not None
                    and is_live(run, last, self.params)
                ):
                    out.append((task.id, cp))
        return out

    def status(self) -> list[TaskStatus]:
        """One TaskStatus per task, in task-set order."""
        out = []
        for task in self._tasks.tasks:
            pr = self._progress[task.id]
            left = _unresolved(task, pr)
            out.append(
                TaskStatus(
                    task.id,
                    len(pr.checked),
                    len(pr.missed),
                    task.total,
                    pr.started,
                    pr.ended,
                    left[0].id if left and not pr.ended else None,
                )
            )
        return out

    # ---- internals ----------------------------------------------------------------------------

    def _judge(self, fix: Fix, now_ms: int, time_ok: bool) -> list[Decision]:
        lat, lon, t, acc = fix.lat, fix.lon, fix.utc_ms, accuracy_m(fix, self.params)
        assert lat is not None and lon is not None and t is not None and acc is not None
        out: list[Decision] = []
        for task in self._tasks.tasks:
            pr = self._progress[task.id]
            if pr.ended:
                continue
            active = task.is_active(now_ms, time_ok)
            for cp in task.checkpoints:
                if pr.resolved(cp.id):
                    continue
                dist = distance_m(lat, lon, cp.lat, cp.lon)
                run = pr.runs.get(cp.id)
                verdict = judge(dist, acc, cp.radius_m, self.params)
                reach = reach_ms(dist, acc, cp.radius_m, self.params)
                run = step_run(run, verdict, t, self.params, reach, pr.out_at.get(cp.id))
                if verdict == "outside":
                    pr.out_at[cp.id] = t
                if run is None:
                    pr.runs.pop(cp.id, None)
                    pr.seen_in.pop(cp.id, None)
                    continue
                pr.runs[cp.id] = run
                if run.last_ms == t:
                    pr.seen_in[cp.id] = fix
                if (
                    active
                    and run.dwelled_ms() >= cp.dwell_s * 1000.0
                    # GPS never skips in a sequence: passing a later checkpoint is not a visit.
                    and (task.order == "any" or cp is _unresolved(task, pr)[0])
                ):
                    # Reach may decide on a later fix (time passed): report where it was seen in.
                    shown = pr.seen_in.get(cp.id, fix)
                    out += self._check_in(task, pr, cp, "gps", shown, now_ms, deciding=fix)
        return out

    def _check_in(
        self,
        task: Task,
        pr: TaskProgress,
        cp: Checkpoint,
        method: Method,
        fix: Fix | None,
        now_ms: int,
        *,
        tag_uid: str | None = None,
        needs_photo: bool | None = None,
        deciding: Fix | None = None,
    ) -> list[Decision]:
        out: list[Decision] = []
        if not pr.started:
            pr.started = True
            out.append(Progress(task.id, "started", None, len(pr.checked), task.total, now_ms))
        used = fix if fix is not None and is_evidence(fix) else None
        dist = acc = None
        if used is not None and used.lat is not None and used.lon is not None:
            dist = distance_m(used.lat, used.lon, cp.lat, cp.lon)
            acc = accuracy_m(used, self.params)
        pr.checked[cp.id] = (method, now_ms)
        pr.forget_live(cp.id)
        out.append(
            CheckIn(
                task.id,
                cp.id,
                task.staff_id,
                method,
                used,
                dist,
                acc,
                tag_uid,
                cp.photo if needs_photo is None else needs_photo,
                now_ms,
                deciding or used,
            )
        )
        if task.order == "sequence":
            for earlier in task.checkpoints[: task.checkpoints.index(cp)]:
                if not pr.resolved(earlier.id):
                    out.append(self._miss(task, pr, earlier, now_ms))
        return out + self._finish(task, pr, now_ms)

    def _miss(self, task: Task, pr: TaskProgress, cp: Checkpoint, now_ms: int) -> Progress:
        pr.missed[cp.id] = now_ms
        pr.forget_live(cp.id)
        return Progress(task.id, "checkpoint_missed", cp.id, len(pr.checked), task.total, now_ms)

    def _finish(self, task: Task, pr: TaskProgress, now_ms: int) -> list[Decision]:
        # completed = every checkpoint resolved (checked in or skipped) before the window ended.
        if pr.ended or _unresolved(task, pr):
            return []
        pr.ended = "completed"
        pr.runs.clear()
        return [Progress(task.id, "completed", None, len(pr.checked), task.total, now_ms)]

    def _settle(self, now_ms: int, time_ok: bool) -> list[Decision]:
        out: list[Decision] = []
        for task in self._tasks.tasks:
            pr = self._progress[task.id]
            if pr.ended:
                continue
            out += self._finish(task, pr, now_ms)
            if pr.ended or not task.is_over(now_ms, time_ok):
                continue
            out += [self._miss(task, pr, cp, now_ms) for cp in _unresolved(task, pr)]
            pr.ended = "overdue"
            pr.runs.clear()
            out.append(Progress(task.id, "overdue", None, len(pr.checked), task.total, now_ms))
        return out

    def _manual_blind(
        self,
        open_tasks: list[tuple[Task, TaskProgress, list[Checkpoint]]],
        fix: Fix | None,
        now_ms: int,
    ) -> list[Decision]:
        # No usable fix: only an obvious candidate will do (a sequence's next, or a last one left).
        obvious = [
            (task, pr, left[0])
            for task, pr, left in open_tasks
            if task.order == "sequence" or len(left) == 1
        ]
        if len(obvious) != 1:
            return [NoCheckpointInReach("ambiguous" if obvious else "no_fix")]
        task, pr, cp = obvious[0]
        return self._check_in(task, pr, cp, "manual", fix, now_ms, needs_photo=True)

    # ---- persistence --------------------------------------------------------------------------

    def apply_stored(self, kind: str, body: Mapping[str, Any], at_ms: int) -> bool:
        """Apply a check-in or progress event that was stored after the last snapshot (crash
        recovery); False when it names a task or checkpoint this task set does not have."""
        pr = self._progress.get(str(body.get("task_id")))
        task = self._tasks.task(str(body.get("task_id")))
        cp_id = body.get("checkpoint_id")
        if pr is None or task is None:
            return False
        if cp_id is not None and task.checkpoint(str(cp_id)) is None:
            return False
        if kind == "checkin":
            method = body.get("method")
            if method not in ("gps", "nfc", "manual") or cp_id is None:
                return False
            pr.apply_checkin(str(cp_id), method, at_ms)
            return True
        return pr.apply_event(str(body.get("event")), cp_id, at_ms)

    def view(self, task_id: str) -> tuple[dict[str, str], Ended | None]:
        """A task's checkpoint states (checked, missed, open) and how it ended, if it did."""
        pr = self._progress[task_id]
        task = self._tasks.task(task_id)
        cps = task.checkpoints if task is not None else ()
        return {cp.id: pr.state_of(cp.id) for cp in cps}, pr.ended

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state; restore() of it continues exactly where this engine is."""
        return dump_snapshot(self._tasks, self._progress, self._gate, self._order)

    def restore(self, data: Mapping[str, Any]) -> None:
        """Replace all state with a snapshot(); ConfigError (nothing changed) when malformed."""
        self._tasks, self._progress, self._gate, self._order = load_snapshot(data)
