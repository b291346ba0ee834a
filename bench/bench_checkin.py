"""GPS check-in precision/recall over many seeded noisy walks; per-fix decision time of the engine.

Run: .venv/bin/python bench/bench_checkin.py [--visits 10000] [--seed 1]
Targets (issue 4): no false check-in, at most 1 missed per 1,000 genuine visits at 25 m / 10 s.
The outbox part of "deciding fix -> event in the outbox" belongs to the driver, not measured here.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.patrol import CheckIn, CheckinParams, PatrolEngine, parse_tasks_body
from agent.patrol.geo import offset_deg
from agent.patrol.walks import Noise, Walk, pass_by, through, visit

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", type=int, default=10_000, help="genuine visits")
    ap.add_argument("--pass-bys", type=int, default=5_000)
    ap.add_argument("--throughs", type=int, default=5_000, help="walk-throughs, 0-1.4 r")
    ap.add_argument("--grazing", type=int, default=10_000, help="walk-throughs at 0.8-1.3 r")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--radius", type=float, default=25.0)
    ap.add_argument("--dwell", type=float, default=10.0)
    ap.add_argument("--decoys", type=int, default=7)
    ap.add_argument("--edge", action="store_true", help="also stops at 0.5-0.8 x radius")
    args = ap.parse_args()
    params = CheckinParams()
    tasks = _taskset(args.radius, args.dwell, args.decoys)
    noise = Noise()
    r, dw = args.radius, args.dwell
    times: list[int] = []
    t_start = time.monotonic()

    missed, premature, coverage_short = 0, 0, 0
    for i in range(args.visits):
        w = visit(args.seed * 1_000_003 + i, CENTRE, r, dw, noise=noise)
        hit = _run(w, tasks, params, times)
        if hit is None:
            missed += 1
            coverage_short += _seen_inside_s(w, r) < 2 * dw
        elif _inside_at(w, hit.fix.utc_ms if hit.fix and hit.fix.utc_ms else 0, r) < dw:
            premature += 1

    false_pass = 0
    for i in range(args.pass_bys):
        w = pass_by(args.seed * 2_000_003 + i, CENTRE, r, noise=noise)
        false_pass += _run(w, tasks, params, times) is not None

    bins: Counter[tuple[str, bool]] = Counter()
    for i in range(args.throughs):
        w = through(args.seed * 3_000_017 + i, CENTRE, r, noise=noise, closest_m=(0.0, 1.4 * r))
        hit = _run(w, tasks, params, times) is not None
        t_in = w.inside_s
        label = (
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
        bins[(label, hit)] += 1

    print(
        f"radius {r:g} m, dwell {dw:g} s, horizontal RMS error {noise.sigma_m} m, "
        f"multipath p={noise.outlier_p}/fix {noise.outlier_m} m, loss p={noise.loss_p}/fix "
        f"{noise.loss_s} s; params {params}"
    )
    print(f"genuine visits (stop within {0.5 * r:g} m for dwell + 3..20 s): {args.visits}")
    print(
        f"  missed: {missed} = {1000 * missed / max(1, args.visits):.2f} per 1,000 "
        f"({coverage_short} of them: fix loss left < {2 * dw:g} s of valid fixes inside)"
    )
    print(f"  decided before {dw:g} s of true continuous time inside: {premature}")
    print(
        f"pass-bys at 40-80 m (half lingering up to 120 s): {args.pass_bys}, "
        f"false check-ins: {false_pass}"
    )
    print("walk-throughs without stopping, by true continuous time inside the radius:")
    for label in sorted({lb for lb, _ in bins}, key=lambda s: (s != "never inside", s)):
        n_hit, n_all = bins[(label, True)], bins[(label, True)] + bins[(label, False)]
        print(
            f"  {label:>14}: {n_all:6d} walks, checked in {n_hit:6d} ({100 * n_hit / n_all:.1f} %)"
        )
    graze = Counter[str]()
    for i in range(args.grazing):
        w = through(args.seed * 5_000_011 + i, CENTRE, r, noise=noise, closest_m=(0.8 * r, 1.3 * r))
        label = "never" if w.inside_s == 0 else "short" if w.inside_s < dw else "long"
        graze[label] += 1
        graze[label + "_hit"] += _run(w, tasks, params, times) is not None
    print(
        f"grazing walk-throughs (closest {0.8 * r:g}-{1.3 * r:g} m): "
        f"never inside {graze['never']}, checked in {graze['never_hit']}; "
        f"inside < {dw:g} s {graze['short']}, checked in {graze['short_hit']}; "
        f"inside >= {dw:g} s {graze['long']}, checked in {graze['long_hit']}"
    )
    if args.edge:
        edge_missed = 0
        n_edge = max(1, args.visits // 5)
        for i in range(n_edge):
            w = visit(args.seed * 4_000_037 + i, CENTRE, r, dw, noise=noise, stop_within=0.8)
            edge_missed += _run(w, tasks, params, times) is None
        print(
            f"visits stopping anywhere within {0.8 * r:g} m: {n_edge}, missed {edge_missed} "
            f"({1000 * edge_missed / n_edge:.1f} per 1,000)"
        )
    us = sorted(t / 1000 for t in times)
    print(
        f"per-fix decision time of the pure engine ({1 + args.decoys} checkpoints, "
        f"{len(us)} fixes): mean {statistics.fmean(us):.1f} us, "
        f"p99 {us[int(0.99 * (len(us) - 1))]:.1f} us, max {us[-1]:.1f} us"
    )
    print(f"wall time {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
