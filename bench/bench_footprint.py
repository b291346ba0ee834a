"""Benchmark: what each import and each component of an agent costs, for both roles.

Run: .venv/bin/python bench/bench_footprint.py [--seconds 5] [--role patrol|camera_gateway]
     [--python VENV/bin/python]
First the figure the issue sets a ceiling for: an idle patrol device measured from outside
(`python -m agent run`, GPS fix at 1 Hz on a pty, companion page off), VmRSS after `--seconds`
of idling (and its RssAnon/RssFile) and the time from spawn to its retained birth, with the
agent's bytecode compiled first as an install does; with `--python`, the same again for the
agent installed in that venv (a Pi's way: Debian's python3, `python3 -m venv
--system-site-packages`, `pip install .`, as scripts/install does); RSS after each import of
the run path, the libraries first, so their own share shows. Then, for each role in fresh
subprocesses: RSS after each start-up stage, the slowest imports (`python -X importtime`,
cumulative), the heaviest Python allocations (tracemalloc, by file), and which optional
libraries got loaded. Prints figures beside their ceilings; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("cv2", "numpy", "PIL", "piexif", "gpiozero", "serial", "pynmea2", "prometheus_client")
IDLE_RSS_CEILING_MB = 40.0  # issue 22: an idle patrol device on a Pi
BIRTH_CEILING_S = 1.0  # issue 22: spawn to retained birth, on this machine


def rss_mb() -> float:
    """This process's resident set now (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def config(role: str, state: Path, port: int, video: Path | None) -> dict[str, Any]:
    """A minimal config of `role` against the broker on `port`."""
    data: dict[str, Any] = {
        "device": {"id": f"fp-{role.replace('_', '-')}", "role": role, "state_dir": str(state)},
        "broker": {"host": "127.0.0.1", "port": port},
    }
    if role == "camera_gateway" and video is not None:
        data["cameras"] = [{"id": "cam-1", "source": f"file:{video}", "fps": 5}]
    return data


async def child(role: str, seconds: float, trace: bool) -> dict[str, Any]:
    """Start one agent here, measure, stop; returns the figures."""
    import tracemalloc

    if trace:
        tracemalloc.start()
    out: dict[str, Any] = {"rss_python": rss_mb()}
    from agent.runtime.memory import defer_imports

    defer_imports()  # as `edge-agent run` does, before the libraries
    from agent.config.isolated import load_in_child
    from agent.config.model import Config  # noqa: F401  (its cost is this stage's)
    from bench.outside import write_config

    out["rss_config"] = rss_mb()
    from agent.runtime.agent import Agent

    out["rss_app"] = rss_mb()
    from agent.demo.broker import Broker

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        video = None
        if role == "camera_gateway":
            video = _video(base / "clip.avi")
        broker = Broker(base / "broker")
        broker.start()
        try:
            data = config(role, base / "state", broker.port, video)
            cfg = load_in_child(write_config(base / "agent.toml", data))  # as `run` does
            async with Agent(cfg):
                await asyncio.sleep(seconds)
                out["rss_running"] = rss_mb()
                out["loaded"] = sorted(m for m in HEAVY if m in sys.modules)
                if trace:
                    snap = tracemalloc.take_snapshot()
                    top = snap.statistics("filename")[:12]
                    out["tracemalloc"] = [
                        (str(s.traceback[0].filename).replace(str(ROOT) + "/", ""), s.size)
                        for s in top
                    ]
        finally:
            broker.stop()
    return out


def _video(path: Path) -> Path:
    # Only the gateway child gets here: OpenCV is its business anyway.
    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 5, (320, 240))
    for i in range(100):
        frame = np.full((240, 320, 3), 90, np.uint8)
        cv2.rectangle(frame, (10 + 2 * i, 100), (40 + 2 * i, 180), (30, 30, 200), -1)
        w.write(frame)
    w.release()
    return path


def run_child(role: str, seconds: float, *flags: str) -> tuple[dict[str, Any], str]:
    """Run this script as a child for `role`; its figures and its stderr."""
    cmd = [sys.executable, *flags, __file__, "--child", role, "--seconds", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def import_summary(stderr: str, n: int = 12) -> list[tuple[str, int]]:
    """The top-level imports with the largest cumulative time (µs)."""
    rows = []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if m and len(m.group(3)) <= 2:  # the first two levels: the agent's own modules
            rows.append((m.group(4), int(m.group(2))))
    return sorted(rows, key=lambda r: -r[1])[:n]


# What `edge-agent run` of an idle patrol device imports (issue 22): the libraries first, then the
# agent's modules, so the figure before `agent.cli` is what the libraries cost by themselves.
# It builds no pydantic model itself (the config is validated in a forked child); the first
# model a document brings costs what `pydantic:first-model` shows, printed apart.
DEFER = "(defer unused modules)"  # agent.runtime.memory.defer_imports, as `run` does first
FIRST_MODEL = "pydantic:first-model"  # building one model imports the schema machinery
RUN_PATH = (
    DEFER,
    "asyncio",
    "sqlite3",
    "paho.mqtt.client",
    "aiosqlite",
    "serial",
    "pynmea2",
    "argparse",
    "tomllib",
    "pydantic",
    "agent.cli",
    "agent.config.model",
    "sync.outbox",
    "agent.runtime.run",
    "agent.patrol.role",
    "firmware_bridge.gps",
    FIRST_MODEL,
)
COST = """
import importlib, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
def first_model():
    from pydantic import BaseModel
    class One(BaseModel):
        x: int = 0
    One(x=1)
def step(name):
    if name.endswith(":first-model"):
        return first_model()
    if name.startswith("("):
        from agent.runtime.memory import defer_imports
        return defer_imports()
    importlib.import_module(name)
prev = rss()
print(f"    {'interpreter':<28} {prev:6.1f} MB")
for name in sys.argv[1:]:
    step(name)
    now = rss()
    print(f"    {name:<28} {now:6.1f} MB  +{now - prev:4.1f}")
    prev = now
"""


def report_import_costs() -> None:
    """RSS after each import of the run path, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", COST, *RUN_PATH], capture_output=True, text=True, cwd=ROOT
    )
    print("  RSS after each import of `edge-agent run` (fresh interpreter):")
    print(out.stdout.rstrip())
    rows = {
        ln[:33].strip(): float(ln[33:].split()[0]) for ln in out.stdout.splitlines() if " MB" in ln
    }
    if "pydantic" in rows and "firmware_bridge.gps" in rows:
        libs, total = rows["pydantic"], rows["firmware_bridge.gps"]
        print(f"  the libraries alone {libs:.1f} MB, the agent's modules +{total - libs:.1f} MB")
        print(f"  (the first model a document brings: +{rows[FIRST_MODEL] - total:.1f} MB more)")


def report(role: str, seconds: float) -> None:
    """Print every figure for one role."""
    plain, _ = run_child(role, seconds)
    print(f"== {role}")
    for key in ("rss_python", "rss_config", "rss_app", "rss_running"):
        print(f"  {key:<14} {plain[key]:7.1f} MB")
    print(f"  optional libraries loaded: {', '.join(plain['loaded']) or 'none'}")
    _, stderr = run_child(role, 1.0, "-X", "importtime")
    print("  slowest imports (cumulative ms):")
    for name, us in import_summary(stderr):
        print(f"    {name:<40} {us / 1000:8.1f}")
    traced, _ = run_child(role, 1.0, "-X", "tracemalloc=1")
    print("  largest Python allocations by file (tracemalloc, KiB):")
    for name, size in traced.get("tracemalloc", []):
        print(f"    {name[-60:]:<60} {size / 1024:8.0f}")


def rss_split(pid: int) -> dict[str, float]:
    """RssAnon (heap, Python objects) and RssFile (mapped libraries) of `pid`, MB."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    keys = ("RssAnon", "RssFile")
    return {ln.split(":")[0]: int(ln.split()[1]) / 1024 for ln in status if ln.startswith(keys)}


async def idle_patrol(
    seconds: float, python: Path | None = None
) -> tuple[float, float, float, dict[str, float]]:
    """An idle patrol process with a 1 Hz GPS fix: VmRSS, VmHWM (MB), spawn-to-birth (s), split.

    `python`: the interpreter of an installed venv (the agent as installed there); default this
    tree with this interpreter.
    """
    from agent.demo.broker import Broker
    from bench.outside import Watch, agent_process, measure, wait_birth, write_config
    from firmware_bridge.sim.gps_sim import GpsSimulator

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        broker = Broker(base / "broker")
        broker.start()
        watch = Watch(broker.port)
        try:
            fix = dict(noise_m=1.0, outlier_prob=0.0, outage_prob=0.0)
            async with GpsSimulator(walk=[(31.2304, 121.4737)], **fix) as gps:  # type: ignore[arg-type]
                data = config("patrol", base / "state", broker.port, None)
                data["gps"] = {"port": str(gps.port), "baud": 9600}
                cfg = write_config(base / "agent.toml", data)
                t0 = time.monotonic()
                with agent_process(cfg, base / "agent.log", python=python) as pid:
                    birth = await wait_birth(watch, data["device"]["id"], t0)
                    window = await measure(pid, seconds)
                    split = rss_split(pid)
            return window.b.rss_mb, window.b.hwm_mb, birth, split
        finally:
            watch.close()
            broker.stop()


def installed_bytecode() -> None:
    """Compile the agent's bytecode as `pip install` does on a device.

    A dev tree run with PYTHONDONTWRITEBYTECODE=1 has none, so every start would compile ~90
    modules from source: +0.3 MB RSS and tenths of a second to the birth a device never pays.
    """
    import compileall

    for package in ("agent", "sync", "firmware_bridge"):
        compileall.compile_dir(ROOT / package, quiet=1)


def report_idle(seconds: float, python: Path | None = None) -> None:
    """The idle patrol figures beside their ceilings."""
    rss, hwm, birth, split = asyncio.run(idle_patrol(seconds, python))
    how = f"installed, {python}" if python else "this tree, bytecode compiled"
    print(f"== idle patrol device, measured from outside (GPS 1 Hz, page off, {how})")
    print(f"  VmRSS after {seconds:g} s  {rss:7.1f} MB   (ceiling {IDLE_RSS_CEILING_MB:g} MB)")
    print("  of which            " + ", ".join(f"{k} {v:.1f} MB" for k, v in split.items()))
    print(f"  VmHWM (peak)       {hwm:7.1f} MB")
    print(f"  spawn to birth     {birth:7.2f} s    (ceiling {BIRTH_CEILING_S:g} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=5.0, help="how long each agent idles")
    ap.add_argument("--role", choices=("patrol", "camera_gateway"))
    ap.add_argument("--child", choices=("patrol", "camera_gateway"), help=argparse.SUPPRESS)
    ap.add_argument(
        "--python",
        type=Path,
        help="also measure the idle patrol device as installed in this venv (its bin/python), "
        "for example one made by scripts/install or `python3 -m venv --system-site-packages`",
    )
    args = ap.parse_args()
    if args.child:
        import os

        trace = os.environ.get("PYTHONTRACEMALLOC") is not None or sys.flags.dev_mode
        trace = trace or "tracemalloc" in str(sys._xoptions)
        print(json.dumps(asyncio.run(child(args.child, args.seconds, trace))))
        return
    installed_bytecode()
    if args.role in (None, "patrol"):
        report_idle(max(args.seconds, 10.0))
        if args.python:
            report_idle(max(args.seconds, 10.0), args.python)
        report_import_costs()
    for role in (args.role,) if args.role else ("patrol", "camera_gateway"):
        report(role, args.seconds)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
