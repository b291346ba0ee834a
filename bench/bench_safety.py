"""Worker-safety cost on the patrol device's loop: per fix and per tick.

Run: .venv/bin/python bench/bench_safety.py [--seconds 1]
Prints figures only; it asserts nothing. The rules (agent/patrol/core/safety.py) see every
usable fix and tick every `tick_s` (1 s): each figure is printed beside a ceiling measured
against the same run's budget (1 % of a 1 Hz fix, 1 % of a 1 s tick).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.patrol.core import PatrolEngine, parse_tasks_body  # noqa: E402
from agent.patrol.core.safety import SafetyRules, SafetyWatch  # noqa: E402
from agent.patrol.safety import work_context  # noqa: E402
from firmware_bridge.geo import offset_deg  # noqa: E402
from firmware_bridge.types import Fix  # noqa: E402
from sync.envelope import TimeStamp  # noqa: E402

HERE = (34.7790, 113.7312)


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    """Mean microseconds per call of fn over about `seconds`."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1e6


def engine(tasks: int, cps: int) -> PatrolEngine:
    """An engine with `tasks` running tasks of `cps` checkpoints each, 50 m apart."""
    body = {
        "tasks": [
            {
                "id": f"t{t}",
                "name": f"t{t}",
                "staff_id": None,
                "start_ms": 0,
                "end_ms": 4_000_000_000_000,
                "order": "any",
                "checkpoints": [
                    {
                        "id": f"c{t}-{c}",
                        "name": f"c{t}-{c}",
                        "lat": offset_deg(*HERE, 50.0 * c, 50.0 * t)[0],
                        "lon": offset_deg(*HERE, 50.0 * c, 50.0 * t)[1],
                        "radius_m": 25,
                        "dwell_s": 600,
                        "tags": [],
                        "photo": False,
                    }
                    for c in range(cps)
                ],
            }
            for t in range(tasks)
        ]
    }
    return PatrolEngine(parse_tasks_body(body))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    rules = SafetyRules(check_every_ms=1_800_000, still_ms=600_000, grace_ms=60_000)
    w = SafetyWatch()
    k = [0]

    def fix() -> None:
        k[0] += 1
        lat, lon = offset_deg(*HERE, (k[0] % 7) * 0.5, 0.0)
        w.on_fix(lat, lon, 4.0, 1_764_000_000_000 + k[0] * 1000, k[0] * 1000, rules)

    print(f"python {platform.python_version()} on {platform.machine()}")
    us = per_call_us(fix, args.seconds)
    print(f"on_fix: {us:.1f} us per fix (ceiling 10000 us: 1 % of a 1 Hz fix)")
    stamp = TimeStamp(ts=1_764_000_000_000, ts_src="ntp", time_ok=True, boot="b", mono_ms=0)
    lat, lon = offset_deg(*HERE, 5.0, 5.0)
    fx = Fix(valid=True, utc_ms=stamp.ts, lat=lat, lon=lon, fix="3d", acc_m=4.0)
    for tasks, cps in ((1, 10), (10, 20), (50, 40)):
        eng = engine(tasks, cps)

        def tick(eng: PatrolEngine = eng) -> None:
            ctx = work_context(eng, stamp, fx, 4.0)
            w.tick(k[0] * 1000, rules, ctx)

        us = per_call_us(tick, args.seconds)
        what = f"{tasks} tasks x {cps} checkpoints"
        print(f"tick with {what}: {us:.1f} us (ceiling 10000 us: 1 % of a 1 s tick)")


if __name__ == "__main__":
    main()
