"""Benchmark: what a Pi owner plans with, per role (issue 22 point 4; docs/hardware.md).

Run: .venv/bin/python bench/bench_board.py [--seconds 60] [--only idle,standby,patrol,gw1,gw2,gw4]

Each scenario is one real agent process (`python -m agent run`) measured from outside over a
window (bench/outside.py): CPU (utime + stime over wall time, % of one core), VmRSS at the end
and VmHWM, and bytes written per hour (`wchar` handed to write(2); `write_bytes` that reached
the block layer, i.e. flash on a Pi). Scenarios:

- idle: patrol device, GPS fix at 1 Hz, no tasks, companion page off;
- standby: the same once provisioned: its signed task set (retained, as central keeps it)
  verified and applied at connect, standing still away from the checkpoints, no camera;
- patrol: the same walking a line of checkpoints 96 m apart at 1.6 m/s (a check-in about
  once a minute), each check-in with a 640x480 photo, signed tasks applied;
- gw1, gw2, gw4: camera gateway with 1, 2, 4 cameras replaying a 640x480 5 fps clip with
  people in it, the default detector, rules on.

Scaled to a Pi: the single-core ratio of `sysbench cpu --threads=1 --time=10 run` (sysbench
1.0.20, prime limit 10000) here against the published Raspberry Pi 4 and 5 results for the same
command (PI_SYSBENCH below, with its source). CPU-bound work does not scale exactly like a prime
sieve (memory bandwidth, SIMD width and OpenCV's kernels differ): the scaled figures are a
planning estimate, not a measurement. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.outside import Watch, Window

ROOT = Path(__file__).resolve().parent.parent

# sysbench 1.0.20, `sysbench cpu --threads=1 --time=60 run`, single core, events/s, published at
# https://leoncode.co.uk/articles/raspberry-pi-benchmarks ("Raspberry Pi CPU Benchmarks").
PI_SYSBENCH = {"Pi 4": 1477.83, "Pi 5": 2737.49}
START = (34.77895, 113.73118)  # Ruyi Lake, as the demo
SPACING_M = 96.0


def sysbench_here() -> float | None:
    """Single-core sysbench events/s on this machine, or None without sysbench."""
    if shutil.which("sysbench") is None:
        return None
    out = subprocess.run(
        ["sysbench", "cpu", "--threads=1", "--time=10", "run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"events per second:\s+([\d.]+)", out)
    return float(m.group(1)) if m else None


def checkpoints(n: int) -> list[tuple[float, float]]:
    """`n` points northwards from START, SPACING_M apart (1e-5 degrees of latitude ~ 1.11 m)."""
    return [(START[0] + (i + 1) * SPACING_M / 111_000, START[1]) for i in range(n)]


def tasks_body(points: list[tuple[float, float]]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    cps = [
        {
            "id": f"cp-{i}",
            "name": f"Checkpoint {i}",
            "lat": lat,
            "lon": lon,
            "radius_m": 25,
            "dwell_s": 5,
            "tags": [],
            "photo": True,
        }
        for i, (lat, lon) in enumerate(points)
    ]
    task = {"id": "t-bench", "name": "bench", "staff_id": None, "start_ms": now - 60_000}
    task["end_ms"] = now + 7200_000
    return {"tasks": [{**task, "order": "any", "checkpoints": cps}]}


def role_sections(name: str, base: Path, gps_port: str) -> dict[str, Any]:
    """Scenario `name`'s own config sections: a gateway's cameras on the demo clip, or a patrol
    device's GPS (and, walking the patrol, its file camera with the demo photo)."""
    from agent.demo import scene
    from agent.demo.clip import camera_section, write_clip

    if name.startswith("gw"):
        clip = write_clip(base / "clip" / "lake.avi")
        # The demo clip's own section picks HOG (its drawn figures are for HOG); the
        # board is planned with the default detector (the person model when fetched).
        section = {k: v for k, v in camera_section(clip).items() if k != "detector"}
        return {"cameras": [{**section, "id": f"cam-{i}"} for i in range(int(name[2:]))]}
    sections: dict[str, Any] = {"gps": {"port": gps_port, "baud": 9600}}
    if name == "patrol":
        scene.write_demo_photo(base / "camera")
        sections["camera"] = {"source": f"file:{base / 'camera'}"}
    return sections


def figures(window: Window, watch: Watch, dev: str, birth: float) -> dict[str, Any]:
    """What a scenario reports: birth time, the measured window's CPU, memory and writes, the
    events central saw, and (for a gateway) each camera's fps and detector."""
    cams = list(cams_status(watch.status.get(dev, {})).values())
    return {
        "birth_s": birth,
        "cpu_pct": window.cpu_pct,
        "rss_mb": window.b.rss_mb,
        "hwm_mb": window.b.hwm_mb,
        "wchar_h": window.per_hour("wchar"),
        "write_bytes_h": window.per_hour("write_bytes"),
        "events": dict(watch.events),
        "fps": [c.get("fps", 0.0) for c in cams],
        "detector": sorted({str(c.get("detector")) for c in cams}),
    }


async def scenario(name: str, seconds: float, base: Path) -> dict[str, Any]:
    """Run one scenario; its figures."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from agent.demo import scene
    from agent.demo.broker import Broker
    from bench.outside import Watch, agent_process, measure, wait_birth, write_config
    from firmware_bridge.sim.gps_sim import GpsSimulator
    from sync.verify import b64url_encode

    key = Ed25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    broker = Broker(base / "broker")
    broker.start()
    watch = Watch(broker.port)
    gateway = name.startswith("gw")
    dev = "bench-gw" if gateway else "bench-pd"
    data: dict[str, Any] = {
        "device": {
            "id": dev,
            "role": "camera_gateway" if gateway else "patrol",
            "state_dir": str(base / "state"),
        },
        "broker": {"host": "127.0.0.1", "port": broker.port},
        "trust": {"ops_keys": [{"kid": "ops-demo", "public_key": public}]},
    }
    try:
        points = checkpoints(int(seconds / 60) + 2)
        walk = [START, *points] if name == "patrol" else [START]
        opts = dict(speed_mps=1.6, noise_m=1.0, outlier_prob=0.0, outage_prob=0.0)
        async with GpsSimulator(walk=walk, **opts) as gps:  # type: ignore[arg-type]
            data.update(role_sections(name, base, str(gps.port)))
            if name in ("patrol", "standby"):
                doc = scene.signed(key, "tasks", tasks_body(points), {"dev": dev})
                watch.publish(f"grid/v1/{dev}/desired/tasks", doc, retain=True)
            cfg = write_config(base / "agent.toml", data)
            t0 = time.monotonic()
            with agent_process(cfg, base / "agent.log") as pid:
                birth = await wait_birth(watch, dev, t0)
                await asyncio.sleep(5.0)  # start-up (imports, first frames) is not steady state
                window = await measure(pid, seconds)
        return figures(window, watch, dev, birth)
    finally:
        watch.close()
        broker.stop()


def cams_status(status: dict[str, Any]) -> dict[str, Any]:
    """The per-camera section of a gateway's status body (empty for a patrol device)."""
    cams = status.get("cameras", status.get("body", {}).get("cameras", {}))
    return cams if isinstance(cams, dict) else {}


def run(name: str, seconds: float) -> dict[str, Any]:
    # State on the real disk (not tmpfs): write_bytes is what reached the block layer.
    with tempfile.TemporaryDirectory(dir=ROOT / "bench", prefix=".board-") as tmp:
        return asyncio.run(scenario(name, seconds, Path(tmp)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measuring window per scenario")
    ap.add_argument("--only", default="idle,standby,patrol,gw1,gw2,gw4")
    args = ap.parse_args()
    here = sysbench_here()
    factors = {pi: here / ev for pi, ev in PI_SYSBENCH.items()} if here else {}
    if here:
        scale = ", ".join(f"{pi} x{f:.2f}" for pi, f in factors.items())
        print(f"sysbench single core here: {here:.0f} events/s; CPU scaled by {scale}")
    cols = "scenario  cpu%here " + " ".join(f"{pi:>8}" for pi in factors)
    print(cols + "   RSS MB  HWM MB  wchar/h  block/h  birth s  fps/camera  detector  events")
    for name in args.only.split(","):
        r = run(name, args.seconds)
        scaled = " ".join(f"{r['cpu_pct'] * f:7.1f}%" for f in factors.values())
        print(
            f"{name:<9} {r['cpu_pct']:7.1f}% {scaled} {r['rss_mb']:8.1f} {r['hwm_mb']:7.1f} "
            f"{r['wchar_h'] / 1e6:6.1f}MB {r['write_bytes_h'] / 1e6:6.1f}MB {r['birth_s']:7.2f}  "
            f"{' '.join(f'{x:.1f}' for x in r['fps']) or '-':>10}  "
            f"{','.join(r['detector']) or '-'}  {r['events']}",
            flush=True,
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
