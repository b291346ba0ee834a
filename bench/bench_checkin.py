"""GPS check-in precision/recall over many seeded noisy walks; per-fix decision time of the engine.

Run: .venv/bin/python bench/bench_checkin.py [--visits 10000] [--seed 1] [--set k_hold=1.0 ...]
Targets: no false check-in, at most 1 missed per 1,000 genuine visits at 25 m / 10 s.
Every missed visit is diagnosed (what GPS saw of it and what the rule made of it); a miss with
fewer than dwell_s of valid fixes while truly inside is "unobservable" and reported separately,
never dropped. The outbox part of "deciding fix -> event in the outbox" belongs to the driver.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.patrol.core import CheckIn, CheckinParams, PatrolEngine, parse_tasks_body
from agent.patrol.core.geofence import (
    DwellRun,
    Gate,
    Verdict,
    accuracy_m,
    is_evidence,
    judge,
    reach_ms,
    step_gate,
    step_run,
)
from firmware_bridge.geo import distance_m, local_ne_m, offset_deg
from firmware_bridge.sim.walks import Noise, Walk, pass_by, through, visit

CENTRE = (30.2741, 120.1551)


def _taskset(radius: float, dwell: float, decoys: int) -> object:
    # The target plus decoy checkpoints 400-1000 m away, so each fix costs what a real task costs.
    cps = [_cp("target", CENTRE, radius, dwell)]
    for i in range(decoys):
        a = 2 * math.pi * i / max(1, decoys)
        r = 400.0 + 600.0 * i / max(1, decoys)
        cps.append(
            _cp(f"decoy{i}", offset_deg(*CENTRE, r * math.cos(a), r * math.sin(a)), radius, dwell)
        )
    task = {
        "id": "t",
        "name": "bench",
        "staff_id": None,
        "start_ms": 0,
        "end_ms": 2**53,
        "order": "any",
        "checkpoints": cps,
    }
    return parse_tasks_body({"tasks": [task]})


def _cp(cp_id: str, at: tuple[float, float], radius: float, dwell: float) -> dict[str, object]:
    return {
        "id": cp_id,
        "name": cp_id,
        "lat": at[0],
        "lon": at[1],
        "radius_m": radius,
        "dwell_s": dwell,
        "tags": [],
        "photo": False,
    }


def _run(walk: Walk, tasks: object, params: CheckinParams, times: list[int]) -> CheckIn | None:
    engine = PatrolEngine(tasks, params)  # type: ignore[arg-type]
    hit: CheckIn | None = None
    for fix in walk.fixes:
        now = (fix.utc_ms or 0) + 150  # the bridge hands a fix over ~150 ms after its epoch
        t0 = time.perf_counter_ns()
        decisions = engine.on_fix(fix, now, True)
        times.append(time.perf_counter_ns() - t0)
        for d in decisions:
            if isinstance(d, CheckIn) and d.checkpoint_id == "target" and hit is None:
                hit = d
    return hit


def _decided_ms(hit: CheckIn) -> int:
    f = hit.deciding or hit.fix
    return f.utc_ms if f is not None and f.utc_ms is not None else 0


def _inside_at(walk: Walk, t_ms: int, radius: float) -> float:
    # True continuous time inside the radius up to t_ms (for "premature" check-ins).
    start = None
    for t, n, e in walk.truth:
        if t > t_ms:
            break
        start = (start if start is not None else t) if math.hypot(n, e) <= radius else None
    return 0.0 if start is None else (t_ms - start) / 1000.0


def _seen_inside_s(walk: Walk, radius: float) -> float:
    # Seconds of valid fixes while truly inside: what GPS could see of the visit at all.
    period = (walk.truth[1][0] - walk.truth[0][0]) / 1000.0
    return period * sum(
        1
        for f, (_, n, e) in zip(walk.fixes, walk.truth, strict=True)
        if f.valid and math.hypot(n, e) <= radius
    )


def _evidence_s(walk: Walk, radius: float) -> float:
    # Seconds of valid fixes (multipath jumps > 40 m off the truth excluded) while truly inside:
    # all the evidence of the stay that exists. Below dwell_s a visit is unobservable by GPS.
    period = (walk.truth[1][0] - walk.truth[0][0]) / 1000.0
    n = 0
    for f, (_, tn, te) in zip(walk.fixes, walk.truth, strict=True):
        if f.valid and f.lat is not None and f.lon is not None and math.hypot(tn, te) <= radius:
            fn, fe = local_ne_m(*CENTRE, f.lat, f.lon)
            n += math.hypot(fn - tn, fe - te) <= 40.0
    return n * period


_MARK: dict[Verdict, str] = {
    "inside": "I",
    "likely": "L",
    "hold": "h",
    "unknown": "u",
    "outside": "o",
}


def _verdict_strip(walk: Walk, params: CheckinParams, radius: float) -> tuple[list[str], int, int]:
    """The rule's verdict at each fix (one mark a fix, see _diagnose), the longest confirmed dwell
    run in ms and how many fixes the gate rejected: the engine mirrored for the target alone."""
    gate, run = Gate(), None
    marks: list[str] = []
    best_ms = rejected = 0
    for f in walk.fixes:
        acc = accuracy_m(f, params)
        if not is_evidence(f) or acc is None:
            marks.append("-")
            continue
        gate, accepted = step_gate(gate, f, params)
        rejected += not accepted
        mark = "x" if not accepted else ""
        for g in accepted:
            assert g.lat is not None and g.lon is not None and g.utc_ms is not None
            ga = accuracy_m(g, params) or params.acc_floor_m
            dist = distance_m(g.lat, g.lon, *CENTRE)
            verdict = judge(dist, ga, radius, params)
            run = step_run(run, verdict, g.utc_ms, params, reach_ms(dist, ga, radius, params))
            best_ms = max(best_ms, run.dwelled_ms() if isinstance(run, DwellRun) else 0)
            mark += _MARK[verdict]
        # A re-anchored chain judges earlier fixes now: show the newest verdict at this fix.
        marks.append(mark[-1] if mark else "x")
    return marks, best_ms, rejected


def _valid_runs(valid_in: list[bool]) -> tuple[int, list[int]]:
    """The longest run of valid fixes and the lengths of the loss gaps, in fixes."""
    longest = cur = 0
    for v in valid_in:
        cur = cur + 1 if v else 0
        longest = max(longest, cur)
    gaps, cur = [], 0
    for v in [*valid_in, True]:
        if not v:
            cur += 1
        elif cur:
            gaps.append(cur)
            cur = 0
    return longest, gaps


def _diagnose(walk: Walk, params: CheckinParams, radius: float, dwell: float) -> str:
    """One line (plus a verdict strip) on a missed visit: what GPS saw, what the rule made of it.

    Mirrors the engine for the one target checkpoint (gate, judge, dwell run), per fix:
    I inside, L likely, h hold, u unknown, o outside, x rejected by the gate, - no fix (loss);
    the strip covers the true time inside the radius (+/- 3 fixes).
    """
    marks, best_ms, rejected = _verdict_strip(walk, params, radius)
    inside = [math.hypot(n, e) <= radius for _, n, e in walk.truth]
    idx = [i for i, v in enumerate(inside) if v]
    lo, hi = max(0, idx[0] - 3), min(len(inside), idx[-1] + 4)
    valid_in = [walk.fixes[i].valid for i in idx]
    longest, gaps = _valid_runs(valid_in)
    ev = _evidence_s(walk, radius)
    seen = Counter(marks[i] for i in idx)
    kind = (
        "unobservable"
        if ev < dwell
        else "never confirmed"
        if not seen["I"] and best_ms == 0
        else "loss-split"
        if gaps and max(gaps) * 1.0 > 3
        else "short run"
    )
    return (
        f"{kind:>15}: inside {len(idx)} s, valid fixes inside {sum(valid_in)} "
        f"(evidence {ev:.0f} s), longest valid run {longest} s, loss gaps {gaps or '-'} s, "
        f"rejected {rejected}, verdicts inside I{seen['I']} L{seen['L']} h{seen['h']} "
        f"u{seen['u']} o{seen['o']}, longest confirmed run {best_ms / 1000:.0f} s\n"
        f"{'':>17}{''.join(marks[lo:hi])}"
    )


def _params(overrides: list[str]) -> CheckinParams:
    # --set name=value: override one CheckinParams field (to reproduce the tuning tables).
    types = {f.name: f.type for f in dataclasses.fields(CheckinParams)}
    kw: dict[str, float | int] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in types:
            raise SystemExit(f"--set: unknown parameter {name!r}")
        kw[name] = int(value) if types[name] in (int, "int") else float(value)
    return dataclasses.replace(CheckinParams(), **kw)  # type: ignore[arg-type]


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=10_000, help="genuine visits")
    ap.add_argument("--pass-bys", type=int, default=5_000)
    ap.add_argument("--throughs", type=int, default=5_000, help="walk-throughs, 0-1.4 r")
    ap.add_argument("--grazing", type=int, default=10_000, help="walk-throughs at 0.8-1.3 r")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--radius", type=float, default=25.0)
    ap.add_argument("--dwell", type=float, default=10.0)
    ap.add_argument("--decoys", type=int, default=7)
    ap.add_argument("--lingering", type=int, default=2_000, help="lingering 28-40 m, 30-180 s")
    ap.add_argument("--edge", action="store_true", help="also stops at 0.5-0.8 x radius")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--quiet", action="store_true", help="no per-miss diagnosis")
    return ap.parse_args()


@dataclasses.dataclass(frozen=True)
class Bench:
    """What every scenario shares: the task set, the rule's parameters, the GPS noise, the
    checkpoint's radius and dwell, the base seed, and the per-fix decision times (appended to)."""

    tasks: object
    params: CheckinParams
    noise: Noise
    radius: float
    dwell: float
    seed: int
    times: list[int]

    def checks_in(self, walk: Walk) -> bool:
        """Whether the engine checks this walk in at the target (timing each fix)."""
        return _run(walk, self.tasks, self.params, self.times) is not None


@dataclasses.dataclass(frozen=True)
class Visits:
    """Genuine visits: how many, missed, decided too early, and the unobservable ones."""

    n: int
    missed: int
    premature: int
    coverage_short: int
    unobservable: int
    unobs_missed: int
    diagnoses: list[str]


@dataclasses.dataclass(frozen=True)
class Grazing:
    """Grazing walk-throughs by time inside (never, short, long): walks and check-ins."""

    walks: Counter[str]
    hits: Counter[str]


def _genuine_visits(b: Bench, n: int) -> Visits:
    missed = premature = coverage_short = unobservable = unobs_missed = 0
    diagnoses: list[str] = []
    r, dw = b.radius, b.dwell
    for i in range(n):
        seed = b.seed * 1_000_003 + i
        w = visit(seed, CENTRE, r, dw, noise=b.noise)
        hit = _run(w, b.tasks, b.params, b.times)
        unobs = _evidence_s(w, r) < dw
        unobservable += unobs
        if hit is None:
            missed += 1
            unobs_missed += unobs
            coverage_short += _seen_inside_s(w, r) < 2 * dw
            diagnoses.append(f"  seed {seed} {_diagnose(w, b.params, r, dw)}")
        elif _inside_at(w, _decided_ms(hit), r) < dw:
            premature += 1
    return Visits(n, missed, premature, coverage_short, unobservable, unobs_missed, diagnoses)


def _false_pass_bys(b: Bench, n: int) -> int:
    """Check-ins among pass-bys at 40-80 m (half of them lingering up to 120 s)."""
    return sum(
        b.checks_in(pass_by(b.seed * 2_000_003 + i, CENTRE, b.radius, noise=b.noise))
        for i in range(n)
    )


def _false_lingering(b: Bench, n: int) -> int:
    """Check-ins among pass-bys at 28-40 m that all linger 30-180 s."""
    return sum(
        b.checks_in(
            pass_by(
                b.seed * 6_000_001 + i,
                CENTRE,
                b.radius,
                noise=b.noise,
                closest_m=(28.0, 40.0),
                linger_s=(30.0, 180.0),
                linger_p=1.0,
            )
        )
        for i in range(n)
    )


def _inside_label(t_in: float, dw: float) -> str:
    return (
        "never inside"
        if t_in == 0
        else f"< {dw:g} s"
        if t_in < dw
        else f"{dw:g}-{2 * dw:g} s"
        if t_in < 2 * dw
        else f"{2 * dw:g}-{3 * dw:g} s"
        if t_in < 3 * dw
        else f">= {3 * dw:g} s"
    )


def _walk_throughs(b: Bench, n: int) -> Counter[tuple[str, bool]]:
    """Walk-throughs at 0-1.4 r without stopping: (time-inside label, checked in) -> walks."""
    bins: Counter[tuple[str, bool]] = Counter()
    for i in range(n):
        w = through(
            b.seed * 3_000_017 + i, CENTRE, b.radius, noise=b.noise, closest_m=(0.0, 1.4 * b.radius)
        )
        bins[(_inside_label(w.inside_s, b.dwell), b.checks_in(w))] += 1
    return bins


def _grazing(b: Bench, n: int) -> Grazing:
    r, dw = b.radius, b.dwell
    walks, hits = Counter[str](), Counter[str]()
    for i in range(n):
        w = through(b.seed * 5_000_011 + i, CENTRE, r, noise=b.noise, closest_m=(0.8 * r, 1.3 * r))
        label = "never" if w.inside_s == 0 else "short" if w.inside_s < dw else "long"
        walks[label] += 1
        hits[label] += b.checks_in(w)
    return Grazing(walks, hits)


def _edge_missed(b: Bench, n: int) -> int:
    """Misses among visits stopping anywhere within 0.8 r."""
    return sum(
        not b.checks_in(
            visit(b.seed * 4_000_037 + i, CENTRE, b.radius, b.dwell, noise=b.noise, stop_within=0.8)
        )
        for i in range(n)
    )


def _print_visits(b: Bench, v: Visits, quiet: bool) -> None:
    r, dw = b.radius, b.dwell
    print(
        f"radius {r:g} m, dwell {dw:g} s, horizontal RMS error {b.noise.sigma_m} m, "
        f"multipath p={b.noise.outlier_p}/fix {b.noise.outlier_m} m, loss p={b.noise.loss_p}/fix "
        f"{b.noise.loss_s} s; params {b.params}"
    )
    print(f"genuine visits (stop within {0.5 * r:g} m for dwell + 3..20 s): {v.n}")
    print(
        f"  missed: {v.missed} = {1000 * v.missed / max(1, v.n):.2f} per 1,000 "
        f"({v.coverage_short} of them: fix loss left < {2 * dw:g} s of valid fixes inside)"
    )
    observable = v.n - v.unobservable
    print(
        f"  unobservable (< {dw:g} s of valid fixes while truly inside): {v.unobservable} visits, "
        f"{v.unobs_missed} of them missed; excluding them: missed {v.missed - v.unobs_missed} of "
        f"{observable} = {1000 * (v.missed - v.unobs_missed) / max(1, observable):.2f} per 1,000"
    )
    print(f"  decided before {dw:g} s of true continuous time inside: {v.premature}")
    if v.diagnoses and not quiet:
        print("  each miss (I inside, L likely, h hold, u unknown, o outside, x rejected, - loss):")
        print("\n".join(v.diagnoses))


def _print_throughs(bins: Counter[tuple[str, bool]]) -> None:
    print("walk-throughs without stopping, by true continuous time inside the radius:")
    for label in sorted({lb for lb, _ in bins}, key=lambda s: (s != "never inside", s)):
        n_hit, n_all = bins[(label, True)], bins[(label, True)] + bins[(label, False)]
        print(
            f"  {label:>14}: {n_all:6d} walks, checked in {n_hit:6d} ({100 * n_hit / n_all:.1f} %)"
        )


def _print_grazing(b: Bench, g: Grazing) -> None:
    r, dw = b.radius, b.dwell
    print(
        f"grazing walk-throughs (closest {0.8 * r:g}-{1.3 * r:g} m): "
        f"never inside {g.walks['never']}, checked in {g.hits['never']}; "
        f"inside < {dw:g} s {g.walks['short']}, checked in {g.hits['short']}; "
        f"inside >= {dw:g} s {g.walks['long']}, checked in {g.hits['long']}"
    )


def _print_times(times: list[int], checkpoints: int) -> None:
    us = sorted(t / 1000 for t in times)
    print(
        f"per-fix decision time of the pure engine ({checkpoints} checkpoints, "
        f"{len(us)} fixes): mean {statistics.fmean(us):.1f} us, "
        f"p99 {us[int(0.99 * (len(us) - 1))]:.1f} us, max {us[-1]:.1f} us"
    )


def main() -> int:
    args = _parse_args()
    b = Bench(
        tasks=_taskset(args.radius, args.dwell, args.decoys),
        params=_params(args.set),
        noise=Noise(),
        radius=args.radius,
        dwell=args.dwell,
        seed=args.seed,
        times=[],
    )
    t_start = time.monotonic()
    visits = _genuine_visits(b, args.visits)
    false_pass = _false_pass_bys(b, args.pass_bys)
    false_linger = _false_lingering(b, args.lingering)
    bins = _walk_throughs(b, args.throughs)
    grazing = _grazing(b, args.grazing)
    n_edge = max(1, args.visits // 5)
    edge_missed = _edge_missed(b, n_edge) if args.edge else 0

    _print_visits(b, visits, args.quiet)
    print(
        f"pass-bys at 40-80 m (half lingering up to 120 s): {args.pass_bys}, "
        f"false check-ins: {false_pass}"
    )
    print(
        f"pass-bys at 28-40 m lingering 30-180 s: {args.lingering}, false check-ins: {false_linger}"
    )
    _print_throughs(bins)
    _print_grazing(b, grazing)
    if args.edge:
        print(
            f"visits stopping anywhere within {0.8 * b.radius:g} m: {n_edge}, missed {edge_missed} "
            f"({1000 * edge_missed / n_edge:.1f} per 1,000)"
        )
    _print_times(b.times, 1 + args.decoys)
    print(f"wall time {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
