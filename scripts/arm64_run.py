"""The run half of `scripts/arm64-check`: both roles on an emulated aarch64 userland, a verdict.

Run by the host's `.venv` Python (x86-64): it owns the parts a Pi would get from outside: the
Mosquitto broker on loopback (qemu-user shares the host's network stack), the simulated GPS on a
pty, the operator key and a signed tasks document, the gateway's clip. The two agents run as
`qemu-aarch64-static -L ROOT ROOT/opt/grid-edge/bin/python -m agent run --config FILE`: the
aarch64 interpreter with the packages a Pi owner installed (Debian's and aarch64 wheels).

Checks (each printed as ok / FAIL with what was seen): the interpreter is aarch64; each role's
retained birth; the signed tasks document acked `applied`; a GPS check-in and its photo's media
event; the gateway's status with a running camera and a detection event; both stop cleanly on
SIGTERM with their graceful offline state. Prints timings only as context: emulated speed is not
a Pi's. Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tomlkit  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from agent.demo import scene  # noqa: E402
from agent.demo.broker import Broker  # noqa: E402
from agent.demo.central import Central  # noqa: E402
from agent.demo.clip import camera_section, write_clip  # noqa: E402
from firmware_bridge.sim.gps_sim import GpsSimulator  # noqa: E402
from sync.verify import b64url_encode  # noqa: E402

PROBE = (
    "import json, platform, sqlite3, ssl, sys\n"
    "print(json.dumps({'machine': platform.machine(), 'python': platform.python_version(),"
    " 'sqlite': sqlite3.sqlite_version, 'openssl': ssl.OPENSSL_VERSION,"
    " 'libc': ' '.join(platform.libc_ver()), 'agent': __import__('agent').__file__}))\n"
)


def guest(qemu: str, root: Path, python: str) -> list[str]:
    """The command prefix that runs the userland's interpreter through qemu, no binfmt needed."""
    return [qemu, "-L", str(root), str(root) + python]


def configs(work: Path, port: int, public: str, gps: str, clip: Path) -> dict[str, Path]:
    """The patrol and gateway config files (TOML, as an owner writes them) for this run."""
    base = {
        "broker": {"host": "127.0.0.1", "port": port},
        "trust": {"ops_keys": [{"kid": "ops-demo", "public_key": public}]},
        "modes": {"profiles": scene.PROFILES},
    }
    patrol = {
        "device": {
            "id": scene.DEV,
            "role": "patrol",
            "zones": scene.ZONES,
            "state_dir": str(work / "patrol"),
            "staff_id": "s-1023",
        },
        **base,
        "gps": {"port": gps, "baud": 9600},
        "camera": {"source": f"file:{work / 'camera'}"},
    }
    gateway = {
        "device": {
            "id": scene.GW,
            "role": "camera_gateway",
            "zones": scene.ZONES,
            "state_dir": str(work / "gateway"),
        },
        **base,
        # The demo's camera (HOG, for its drawn figures) and the same clip through the default
        # detector, the person model (OpenCV DNN on Debian's OpenCV 4.6 for aarch64).
        "cameras": [
            camera_section(clip),
            {**_without_detector(camera_section(clip)), "id": "cam-person-model"},
        ],
    }
    out = {}
    for name, data in (("patrol", patrol), ("gateway", gateway)):
        path = work / f"{name}.toml"
        path.write_text(tomlkit.dumps(data))
        out[name] = path
    return out


def _without_detector(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "detector"}


class Checks:
    """Named checks, each passed once with what was seen."""

    def __init__(self, names: list[str]) -> None:
        self.seen: dict[str, str | None] = dict.fromkeys(names)
        self.t0 = time.monotonic()

    def passed(self, name: str, detail: str) -> None:
        if self.seen[name] is None:
            self.seen[name] = f"{detail} (after {time.monotonic() - self.t0:.0f} s)"

    def done(self) -> bool:
        return all(v is not None for v in self.seen.values())


def observe(central: Central, checks: Checks) -> None:
    """Turn what central has received so far into passed checks."""
    with central._lock:  # the demo's subscriber keeps its state under this lock
        online, health = dict(central.online), dict(central.health)
        kinds = {d: dict(c) for d, c in central.kinds.items()}
        acks = [r for r in central.received[scene.DEV] if r.topic.endswith("/ack")]
    for dev, name in ((scene.DEV, "patrol birth"), (scene.GW, "gateway birth")):
        if "online" in online[dev]:
            checks.passed(name, "retained state online")
    if any(b'"applied"' in r.payload for r in acks):
        checks.passed("tasks applied", "ack status applied")
    fix = (health[scene.DEV].get("gps") or {}).get("fix")
    if fix not in (None, "none"):
        checks.passed("patrol gps fix", f"status gps.fix = {fix}")
    if kinds[scene.DEV].get("checkin"):
        checks.passed("patrol check-in", f"{kinds[scene.DEV]['checkin']} checkin event(s)")
    if kinds[scene.DEV].get("media"):
        checks.passed("patrol photo", f"{kinds[scene.DEV]['media']} media event(s)")
    cams = health[scene.GW].get("cameras") or {}
    if any((c or {}).get("fps", 0) > 0 for c in cams.values()):
        checks.passed("gateway camera", json.dumps(cams)[:160])
    model = cams.get("cam-person-model") or {}
    if model.get("detector") == "ssd" and model.get("fps", 0) > 0:
        checks.passed("gateway person model", f"detector ssd at {model['fps']:.2f} fps (emulated)")
    if kinds[scene.GW].get("detection"):
        checks.passed("gateway detection", f"{kinds[scene.GW]['detection']} detection event(s)")


async def wait_for(pred: Callable[[], bool], limit_s: float) -> bool:
    """Poll `pred` twice a second until it holds or `limit_s` passes (a run-once script)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.5)
    return pred()


def stop(procs: dict[str, subprocess.Popen[bytes]], checks: Checks) -> None:
    """SIGTERM both agents; a clean exit within 60 s (emulated) passes the role's stop check."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code == 0:
            checks.passed(f"{name} clean stop", "exit code 0 after SIGTERM")


def probe(prefix: list[str], work: Path) -> dict[str, Any]:
    """What the emulated interpreter says about itself and where it imports the agent from."""
    out = subprocess.run(
        [*prefix, "-c", PROBE], capture_output=True, text=True, check=True, cwd=work
    )
    return dict(json.loads(out.stdout))


def spawn(
    prefix: list[str], files: dict[str, Path], work: Path
) -> dict[str, subprocess.Popen[bytes]]:
    """Start `agent run` for each config under qemu, output into NAME.log."""
    # The person model's files are data, the same on every architecture: the host's copy
    # (fetched by scripts/setup.sh), as a Pi owner's `edge-agent models fetch` would place them.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "EDGE_AGENT_MODELS": str(ROOT / "models")}
    procs = {}
    for name, path in files.items():
        with (work / f"{name}.log").open("wb") as log:
            cmd = [*prefix, "-m", "agent", "run", "--config", str(path)]
            # cwd: the run dir, so `-m agent` imports the installed agent, not this tree.
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=work)
    return procs


async def run(args: argparse.Namespace, prefix: list[str], facts: dict[str, Any]) -> int:
    """Everything on the host, both agents under qemu; 0 when every check passed."""
    work: Path = args.work
    names = ["patrol birth", "tasks applied", "patrol gps fix", "patrol check-in"]
    names += ["patrol photo", "gateway birth", "gateway camera", "gateway detection"]
    names += ["gateway person model"]
    checks = Checks([*names, "patrol clean stop", "gateway clean stop"])
    key = Ed25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    clip = write_clip(work / "clip" / "lake.avi")
    scene.write_demo_photo(work / "camera")
    broker = Broker(work / "broker")
    broker.start()
    central = Central(broker.host, broker.port, [scene.DEV, scene.GW], verbose=False)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        walk = dict(speed_mps=1.6, noise_m=2.0, outlier_prob=0.0, outage_prob=0.0, seed=7)
        async with GpsSimulator(walk=scene.route(), **walk) as gps:  # type: ignore[arg-type]
            files = configs(work, broker.port, public, str(gps.port), clip)
            now = int(time.time() * 1000)
            doc = scene.signed(key, "tasks", scene.tasks_body(now), {"dev": scene.DEV})
            central.publish(f"grid/v1/{scene.DEV}/desired/tasks", doc, retain=True)
            procs = await asyncio.to_thread(spawn, prefix, files, work)
            await wait_for(lambda: _observed(central, checks, names), args.seconds)
    finally:
        stop(procs, checks)
        await asyncio.sleep(1.0)
        central.close()
        broker.stop()
    return report(checks, facts, work)


def _observed(central: Central, checks: Checks, names: list[str]) -> bool:
    observe(central, checks)
    return all(checks.seen[n] is not None for n in names)


def report(checks: Checks, facts: dict[str, Any], work: Path) -> int:
    """Print each check and write result.json beside the logs; 0 when all passed."""
    for name, seen in checks.seen.items():
        print(f"  {'ok  ' if seen else 'FAIL'} {name:<20} {seen or 'not seen'}")
    (work / "result.json").write_text(json.dumps({"guest": facts, "checks": checks.seen}, indent=1))
    print(f"logs: {work}/patrol.log {work}/gateway.log")
    return 0 if checks.done() else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="the arm64 userland")
    ap.add_argument("--python", default="/opt/grid-edge/bin/python", help="inside the userland")
    ap.add_argument("--qemu", default="qemu-aarch64-static")
    ap.add_argument("--work", type=Path, required=True, help="state, configs and logs of the run")
    ap.add_argument("--seconds", type=float, default=420.0, help="limit for the checks to pass")
    ap.add_argument(
        "--native", action="store_true", help="the host's interpreter instead (a control run)"
    )
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    prefix = [sys.executable] if args.native else guest(args.qemu, args.root, args.python)
    facts = probe(prefix, args.work)
    print("guest:", json.dumps(facts))
    sys.exit(asyncio.run(run(args, prefix, facts)))


if __name__ == "__main__":
    main()
