"""Time from the deciding GPS fix to the check-in committed in the outbox (target 50 ms).

Run: .venv/bin/python bench/bench_patrol_latency.py [--checkins 300] [--photos 30] [--pty 10]

Four measurements, each with the real PatrolDriver, SQLite outbox (WAL, synchronous=FULL) and
media store in a temporary state dir:
  driver   the Fix handed to the driver -> the checkin's outbox commit returned (no photo)
  photo    the same for checkpoints with photo:true (file camera, JPEG + EXIF + media store),
           fixes --photo-gap-ms apart; the photo is taken early, while the dwell runs
  late     the same with early_photo off: the photo is taken after the deciding fix
  pty      end to end through the pty GPS simulator and GpsSource: from the moment the epoch's
           last NMEA sentence was read (Fix.mono_ms) to the commit; this includes how long
           GpsSource waits before it closes an epoch (its idle flush, 0.3 s by default)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.clock import SystemClock
from agent.config.model import ModeProfile
from agent.media import MediaStore
from agent.patrol.camera import Camera
from agent.patrol.config import PatrolCameraConfig, PatrolConfig
from agent.patrol.driver import PatrolDriver
from firmware_bridge.geo import offset_deg
from firmware_bridge.gps import GpsSource
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.types import Fix
from sync.messages import Stored
from sync.outbox import Outbox

ORIGIN = (30.2741, 120.1551)
DEV = "pd-bench"


class TimedOutbox(Outbox):
    """The real outbox, noting when each checkin's commit returned to its caller."""

    committed: list[float]

    async def append(
        self,
        kind: str,
        body: Mapping[str, Any],
        *,
        priority: int | None = None,
        group: str | None = None,
        journal: bool = False,
    ) -> Stored:
        stored = await super().append(kind, body, priority=priority, group=group, journal=journal)
        if kind == "checkin":
            self.committed.append(time.perf_counter())
        return stored


class Fixes:
    """Fixes handed to the driver one at a time, noting when each was handed over."""

    def __init__(self, fixes: list[Fix], gap_s: float) -> None:
        self._fixes = fixes
        self._gap_s = gap_s
        self.handed: list[float] = []

    def __aiter__(self) -> AsyncIterator[Fix]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[Fix]:
        for fix in self._fixes:
            await asyncio.sleep(self._gap_s)  # the receiver's pause between epochs
            self.handed.append(time.perf_counter())
            yield fix


def checkpoints(n: int, spacing_m: float, photo: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": f"cp{i}",
            "name": f"cp{i}",
            "lat": p[0],
            "lon": p[1],
            "radius_m": 25,
            "dwell_s": 10 if not photo else 5,
            "tags": [],
            "photo": photo,
        }
        for i, p in ((i, offset_deg(*ORIGIN, spacing_m * i, 0.0)) for i in range(n))
    ]


def record(cps: list[dict[str, Any]], dwell: float | None = None) -> dict[str, Any]:
    if dwell is not None:
        cps = [{**c, "dwell_s": dwell} for c in cps]
    task = {
        "id": "t",
        "name": "bench",
        "staff_id": None,
        "start_ms": 0,
        "end_ms": 2**53,
        "order": "any",
        "checkpoints": cps,
    }
    return {"id": "doc", "ver": 1, "iat": 0, "body": {"tasks": [task]}}


def standing_fixes(cps: list[dict[str, Any]], per_cp: int) -> list[Fix]:
    """A person standing at each checkpoint in turn for `per_cp` seconds (small noise)."""
    out: list[Fix] = []
    t = 1_764_000_000_000
    for i, c in enumerate(cps):
        for k in range(per_cp):
            lat, lon = offset_deg(c["lat"], c["lon"], (k % 3) - 1.0, (i % 2) - 0.5)
            out.append(
                Fix(
                    valid=True,
                    utc_ms=t,
                    lat=lat,
                    lon=lon,
                    fix="3d",
                    sats=9,
                    hdop=0.8,
                    acc_m=3.0,
                    mono_ms=None,
                )
            )
            t += 1000
        t += 200_000  # the walk to the next checkpoint
    return out


def summary(name: str, ms: list[float]) -> str:
    if not ms:
        return f"{name:7s} no samples"
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else [ms[0]] * 99
    return (
        f"{name:7s} n={len(ms):4d}  mean {statistics.fmean(ms):6.2f}  p50 {q[49]:6.2f}  "
        f"p95 {q[94]:6.2f}  p99 {q[98]:6.2f}  max {max(ms):6.2f} ms"
    )


async def direct(
    n: int, photo: bool, gap_s: float, workdir: Path, *, early: bool = True
) -> list[float]:
    state = workdir / ("driver" if not photo else "photo" if early else "photo-late")
    clock = SystemClock(synced=lambda: True)
    cps = checkpoints(n, 300.0, photo)
    fixes = Fixes(standing_fixes(cps, 14), gap_s)
    async with TimedOutbox(state, DEV, stamp=clock.stamp, budget_bytes=1 << 30) as outbox:
        outbox.committed = []
        media = MediaStore(state, DEV, outbox, quota_bytes=1 << 30)
        async with contextlib.AsyncExitStack() as stack:
            cam = None
            if photo:
                spec = PatrolCameraConfig(source=f"file:{pictures(workdir)}")
                cam = await stack.enter_async_context(Camera(spec))
            driver = PatrolDriver(
                outbox=outbox,
                media=media,
                clock=clock,
                state_dir=state,
                staff_id=None,
                profile=ModeProfile,
                tasks=record(cps),
                fixes=fixes,
                camera=cam,
                settings=PatrolConfig(
                    tick_s=1.0, save_interval_s=60, reap_interval_s=3600, early_photo=early
                ),
            )
            async with driver:
                while driver.reporter.counts.checkins < n:
                    await asyncio.sleep(0.05)
                await driver.drain()
    # Each check-in's deciding fix is the last one handed over before its commit.
    out = []
    for done in outbox.committed:
        handed = max(h for h in fixes.handed if h <= done)
        out.append((done - handed) * 1000.0)
    return out


def pictures(workdir: Path) -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"
    if shared.is_dir():
        return shared
    from PIL import Image

    folder = workdir / "pics"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (1280, 960), (90, 120, 150)).save(folder / "a.jpg")
    return folder


async def pty(n: int, workdir: Path) -> list[float]:
    """Walk through n checkpoints 150 m apart at 3 m/s, 40x real time, dwell 0."""
    state = workdir / "pty"
    clock = SystemClock(synced=lambda: True)
    cps = checkpoints(n, 150.0, False)
    route = [offset_deg(*ORIGIN, -60.0, 0.0), offset_deg(*ORIGIN, 150.0 * n, 0.0)]
    samples: list[float] = []
    async with (
        GpsSimulator(
            walk=route,
            speed=40,
            speed_mps=3.0,
            seed=1,
            outlier_prob=0.0,
            outage_prob=0.0,
            paused=True,
        ) as sim,
        GpsSource(sim.port, 9600) as gps,
        Outbox(state, DEV, stamp=clock.stamp, budget_bytes=1 << 30) as outbox,
    ):
        media = MediaStore(state, DEV, outbox, quota_bytes=1 << 30)
        driver = PatrolDriver(
            outbox=outbox,
            media=media,
            clock=clock,
            state_dir=state,
            staff_id=None,
            profile=ModeProfile,
            tasks=record(cps, dwell=0.0),
            fixes=gps.fixes(),
            settings=PatrolConfig(save_interval_s=60, reap_interval_s=3600),
        )
        async with driver:
            sim.resume()
            seen = 0
            deadline = time.monotonic() + 120
            while driver.reporter.counts.checkins < n and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
                if driver.reporter.counts.checkins > seen:
                    seen = driver.reporter.counts.checkins
                    samples.append(float(driver.reporter.counts.fix_to_outbox_ms))
    return samples


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)  # the outboxes' "state_reset" notices are noise
    with tempfile.TemporaryDirectory(prefix="bench-patrol-") as tmp:
        work = Path(tmp)
        print(f"python {sys.version.split()[0]}, state dir on {work}")
        lines = [summary("driver", await direct(args.checkins, False, args.gap_ms / 1000, work))]
        if args.photos:
            # Early photos need the receiver's pace: the photo is taken between fixes.
            gap = args.photo_gap_ms / 1000
            lines.append(summary("photo", await direct(args.photos, True, gap, work)))
            late = await direct(args.photos, True, gap, work, early=False)
            lines.append(summary("late", late))
        if args.pty:
            lines.append(summary("pty", await pty(args.pty, work)))
        print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkins", type=int, default=300)
    parser.add_argument("--photos", type=int, default=30)
    parser.add_argument("--pty", type=int, default=10, help="check-ins through the pty GPS")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="idle time between fixes")
    parser.add_argument(
        "--photo-gap-ms", type=float, default=200.0, help="idle time between fixes, photo runs"
    )
    asyncio.run(main(parser.parse_args()))
