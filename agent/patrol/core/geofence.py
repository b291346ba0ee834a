"""GPS check-in rule: per-fix evidence with accuracy, dwell runs with hysteresis, outlier gate."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from firmware_bridge.geo import distance_m
from firmware_bridge.types import Fix

Verdict = Literal["inside", "likely", "hold", "outside", "unknown"]


@dataclass(frozen=True, slots=True)
class CheckinParams:
    """Parameters of the check-in rule; docs/checkin.md explains each and how they were tuned."""

    k_enter: float = 2.5  # "inside": dist + k_enter*acc <= radius (confirms a run)
    k_stay: float = 1.5  # "likely": dist + k_stay*acc <= radius (starts or extends a run)
    k_hold: float = 1.5  # "hold": dist + k_hold*acc <= radius; = k_stay: off (see docs)
    k_exit: float = 1.0  # outside: dist - k_exit*acc > radius + margin_m
    margin_m: float = 5.0  # hysteresis band beyond the radius
    confirm_s: float = 15.0  # a run of "likely" fixes this long confirms itself
    gap_s: float = 45.0  # longest time between two inside fixes that still counts as continuous
    reach_speed_mps: float = 2.0  # fastest a patrol on foot moves; reach = depth / this; 0: off
    acc_floor_m: float = 2.0  # receivers under-report; never trust a fix better than this
    uere_m: float = 5.0  # accuracy = hdop * uere_m when the fix has no acc_m
    max_speed_mps: float = 15.0  # outlier gate: faster than this from the anchor is a jump
    gate_k: float = 2.0  # outlier gate: accuracy allowance gate_k * (acc_a + acc_b)
    gate_gap_s: float = 2.0  # outlier gate: the speed allowance from the anchor counts <= this
    reanchor_n: int = 3  # this many mutually consistent rejected fixes re-anchor the gate
    reorder_ms: int = 0  # hold fixes this long (fix time) to sort late ones; 0 = judge at once
    rewind_reset_s: float = 300.0  # a fix this much older than the last is a receiver time reset
    manual_k: float = 1.0  # manual reach: dist <= radius + manual_k * acc
    manual_max_acc_m: float = 50.0  # a worse fix cannot place a manual check-in

    def __post_init__(self) -> None:
        if not self.k_hold <= self.k_stay <= self.k_enter:
            raise ValueError("k_hold <= k_stay <= k_enter is required (hysteresis would invert)")
        if self.reanchor_n < 1 or self.gap_s < 0 or self.max_speed_mps <= 0:
            raise ValueError("reanchor_n >= 1, gap_s >= 0 and max_speed_mps > 0 are required")
        if self.gate_gap_s <= 0:
            raise ValueError("gate_gap_s must be > 0")
        if self.reorder_ms < 0:
            raise ValueError("reorder_ms must be >= 0")


def accuracy_m(fix: Fix, params: CheckinParams) -> float | None:
    """The fix's horizontal accuracy (acc_m, else hdop x UERE, floored); None when unknown."""
    if fix.acc_m is not None and fix.acc_m >= 0.0:
        acc = fix.acc_m
    elif fix.hdop is not None and fix.hdop > 0.0:
        acc = fix.hdop * params.uere_m
    else:
        return None
    return max(acc, params.acc_floor_m)


def is_evidence(fix: Fix) -> bool:
    """Only a valid, positioned, time-stamped fix says anything about where the device is."""
    return (
        fix.valid
        and fix.fix != "none"
        and fix.lat is not None
        and fix.lon is not None
        and fix.utc_ms is not None
    )


def judge(dist: float, acc: float, radius: float, params: CheckinParams) -> Verdict:
    """One fix against one disc: inside, likely, hold, outside or unknown (docs/checkin.md §4)."""
    if dist + params.k_enter * acc <= radius:
        return "inside"
    if dist + params.k_stay * acc <= radius:
        return "likely"
    if dist + params.k_hold * acc <= radius:
        return "hold"
    if dist - params.k_exit * acc > radius + params.margin_m:
        return "outside"
    return "unknown"


@dataclass(frozen=True, slots=True)
class DwellRun:
    """A run of inside/likely fixes for one checkpoint; it counts once one fix was inside."""

    start_ms: int  # first fix of the run (fix time)
    last_ms: int  # latest inside/likely fix (or hold fix, once confirmed)
    confirmed: bool  # some fix of the run was "inside", not just "likely"
    lead_ms: int = 0  # reach of the first fix: inside at least this long before it
    until_ms: int = 0  # latest fix time + reach over the run's fixes: inside at least until then
    seen_ms: int = 0  # newest fix judged while the run was live (any verdict)

    def dwelled_ms(self) -> int:
        """Continuous time inside so far, reach included; 0 until the run is confirmed.

        Reach after the last fix counts only as fix time passes (up to seen_ms), never ahead,
        and reach never adds more than the run itself observed (half the dwell at least seen).
        """
        if not self.confirmed:
            return 0
        observed = self.last_ms - self.start_ms
        credit = self.lead_ms + max(0, min(self.until_ms, self.seen_ms) - self.last_ms)
        return observed + min(credit, observed)


def reach_ms(dist: float, acc: float, radius: float, params: CheckinParams) -> int:
    """Least time a person at this fix needs to cross the radius at reach_speed_mps (0: off).

    The position is taken conservatively (k_stay accuracies further out), as for "likely".
    """
    if params.reach_speed_mps <= 0.0:
        return 0
    depth = radius - dist - params.k_stay * acc
    return int(1000.0 * depth / params.reach_speed_mps) if depth > 0.0 else 0


def is_live(run: DwellRun | None, t_ms: int, params: CheckinParams) -> bool:
    """A run still continuous at t_ms (its last inside/likely/hold fix is at most gap_s earlier)."""
    return run is not None and t_ms - run.last_ms <= params.gap_s * 1000.0


def step_run(
    run: DwellRun | None,
    verdict: Verdict,
    t_ms: int,
    params: CheckinParams,
    reach: int = 0,
    out_ms: int | None = None,
) -> DwellRun | None:
    """Advance a run by one judged fix and its reach_ms: outside ends it, inside/likely extend.

    out_ms: the last fix seen confidently outside; a new run's lead never reaches back past it.
    """
    live = run if run is not None and is_live(run, t_ms, params) else None
    if verdict == "outside":
        return None
    if verdict == "hold":
        # Measured inside the radius, not by enough to start or confirm anything: it only keeps a
        # run that was already confidently inside going (enter strictly, stay loosely).
        if live is not None and live.confirmed:
            until = max(live.until_ms, t_ms + reach)
            return DwellRun(live.start_ms, t_ms, True, live.lead_ms, until, t_ms)
        return None if live is None else dataclasses.replace(live, seen_ms=t_ms)
    if verdict == "unknown":
        # Neither evidence of leaving nor of staying; a long unknown stretch ends it through gap_s.
        return None if live is None else dataclasses.replace(live, seen_ms=t_ms)
    strong = verdict == "inside"
    if live is None:
        lead = reach if out_ms is None else max(0, min(reach, t_ms - out_ms))
        return DwellRun(t_ms, t_ms, strong or params.confirm_s <= 0, lead, t_ms + reach, t_ms)
    # Drifting GPS error decorrelates over tens of seconds: a long likely run is evidence too.
    long_enough = t_ms - live.start_ms >= params.confirm_s * 1000.0
    confirmed = live.confirmed or strong or long_enough
    until = max(live.until_ms, t_ms + reach)
    return DwellRun(live.start_ms, t_ms, confirmed, live.lead_ms, until, t_ms)


@dataclass(frozen=True, slots=True)
class Gate:
    """Outlier gate state: the last accepted fix and the rejected fixes since (fix-time order)."""

    anchor: Fix | None = None
    pending: tuple[Fix, ...] = ()


def _where(fix: Fix) -> tuple[float, float, int]:
    if fix.lat is None or fix.lon is None or fix.utc_ms is None:
        raise ValueError("the outlier gate takes evidence fixes only")
    return fix.lat, fix.lon, fix.utc_ms


def _consistent(a: Fix, b: Fix, params: CheckinParams, *, capped: bool) -> bool:
    # b is reachable from a at max_speed, allowing for both fixes' errors. Capped: the time
    # allowance is at most gate_gap_s, so that a fix loss does not open the gate to any jump.
    lat_a, lon_a, t_a = _where(a)
    lat_b, lon_b, t_b = _where(b)
    dt_s = max(0.0, (t_b - t_a) / 1000.0)
    if capped:
        dt_s = min(dt_s, params.gate_gap_s)
    acc_a = accuracy_m(a, params) or params.acc_floor_m
    acc_b = accuracy_m(b, params) or params.acc_floor_m
    allowed = params.max_speed_mps * dt_s + params.gate_k * (acc_a + acc_b)
    return distance_m(lat_a, lon_a, lat_b, lon_b) <= allowed


def step_gate(gate: Gate, fix: Fix, params: CheckinParams) -> tuple[Gate, tuple[Fix, ...]]:
    """Feed one evidence fix (newer than all before); return the new gate and the fixes accepted.

    Against the anchor the speed allowance covers at most gate_gap_s: after a fix loss a far fix
    is followed only once reanchor_n fixes agree (a jump right after a loss is rejected). Within
    the chain of rejected fixes it is not capped, so a slow fix rate never leaves the gate stuck.
    """
    if gate.anchor is None or _consistent(gate.anchor, fix, params, capped=True):
        return Gate(anchor=fix), (fix,)
    # Keep only the rejected fixes that form a consistent chain ending in this one.
    chain = [fix]
    for prev in reversed(gate.pending):
        if not _consistent(prev, chain[-1], params, capped=False):
            break
        chain.append(prev)
    chain.reverse()
    if len(chain) >= params.reanchor_n:
        # The device really moved (or the anchor was the outlier): accept the chain in order.
        return Gate(anchor=fix), tuple(chain)
    return Gate(anchor=gate.anchor, pending=tuple(chain)), ()


def gate_to_json(gate: Gate) -> dict[str, Any]:
    """JSON form of the gate state."""
    return {"anchor": fix_to_json(gate.anchor), "pending": [fix_to_json(f) for f in gate.pending]}


def gate_from_json(raw: Any) -> Gate:
    """Inverse of gate_to_json; TypeError/ValueError/KeyError when malformed."""
    pending = tuple(f for f in map(fix_from_json, raw["pending"]) if f is not None)
    return Gate(fix_from_json(raw["anchor"]), pending)


@dataclass(frozen=True, slots=True)
class FixOrder:
    """Fix-time ordering: evidence fixes held for reordering, and the newest fix time released."""

    held: tuple[Fix, ...] = ()
    last_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"held": [fix_to_json(f) for f in self.held], "last_ms": self.last_ms}

    @staticmethod
    def from_json(raw: Any) -> FixOrder:
        """Inverse of to_json; TypeError/ValueError/KeyError when malformed."""
        held = sorted((f for f in map(fix_from_json, raw["held"]) if f), key=_t)
        last = raw["last_ms"]
        return FixOrder(tuple(held), None if last is None else int(last))


OrderOutcome = Literal["ok", "late", "reset"]


def _t(fix: Fix) -> int:
    return fix.utc_ms if fix.utc_ms is not None else 0


def step_order(
    order: FixOrder, fix: Fix, params: CheckinParams
) -> tuple[FixOrder, tuple[Fix, ...], OrderOutcome]:
    """Hold up to reorder_ms, release in fix-time order; a fix not newer than the released is late.

    "reset": the receiver's clock went back more than rewind_reset_s; judging starts afresh from
    this fix (the caller clears dwell runs and the gate).
    """
    t = _t(fix)
    outcome: OrderOutcome = "ok"
    if order.last_ms is not None and t <= order.last_ms:
        if order.last_ms - t <= params.rewind_reset_s * 1000.0:
            return order, (), "late"
        order, outcome = FixOrder(), "reset"
    times = [_t(f) for f in order.held]
    pos = bisect.bisect_left(times, t)
    if pos < len(times) and times[pos] == t:
        return order, (), "late"  # a replay of a fix time already held: the first one wins
    held = [*order.held[:pos], fix, *order.held[pos:]]
    n = bisect.bisect_right([_t(f) for f in held], _t(held[-1]) - params.reorder_ms)
    ready = tuple(held[:n])
    last = _t(ready[-1]) if ready else order.last_ms
    return FixOrder(tuple(held[n:]), last), ready, outcome


_FIX_FIELDS = frozenset(f.name for f in dataclasses.fields(Fix))


def fix_to_json(fix: Fix | None) -> dict[str, Any] | None:
    """A Fix as a JSON object (all its fields)."""
    return None if fix is None else dataclasses.asdict(fix)


def fix_from_json(raw: Any) -> Fix | None:
    """Inverse of fix_to_json; keys this Fix does not know are ignored (older/newer bridge)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TypeError("a fix must be an object")
    fix = Fix(**{k: v for k, v in raw.items() if k in _FIX_FIELDS})
    if not is_evidence(fix):
        raise ValueError("a stored fix must be an evidence fix")
    return fix
