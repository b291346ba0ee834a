"""Benchmark: bytes written to storage per event, from commit to delivery and deletion.

Run: .venv/bin/python bench/bench_write_amplification.py [--events 200]
A real agent (patrol role, no devices) against a local Mosquitto stores N events of each kind,
the publisher delivers them and the outbox deletes them. Reported per event: `wchar` (bytes
handed to write(2), every file: SQLite database, WAL, journal, media) and `write_bytes` (what
reached the block layer; 0 on tmpfs) from /proc/self/io, and the state dir's size at the end.
Kinds: a check-in, a check-in with one ~150 KB photo (media file plus its chunks), a detection.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.config.model import parse  # noqa: E402
from agent.demo.broker import Broker  # noqa: E402
from agent.media import MediaStore  # noqa: E402
from agent.runtime.agent import Agent  # noqa: E402


def proc_io() -> dict[str, int]:
    """This process's /proc/self/io counters."""
    out = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = int(value)
    return out


def photo(seed: int) -> bytes:
    """A JPEG of photo-like size (noise compresses badly, as real scenes do)."""
    from PIL import Image

    rng = random.Random(seed)
    img = Image.frombytes("RGB", (480, 360), rng.randbytes(480 * 360 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70)
    return buf.getvalue()


CHECKIN = {"task_id": "t-1", "checkpoint_id": "cp-7", "method": "gps", "lat": 30.1, "lon": 120.2}
DETECTION = {"camera_id": "cam-1", "rule": "crowd", "zone": "plaza", "state": "start", "count": 6}


def dir_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def measure(agent: Agent, media: MediaStore, kind: str, n: int) -> dict[str, float]:
    """Store n events of `kind`, wait until all are delivered; bytes written per event."""
    photos = [photo(i) for i in range(n)] if kind == "checkin+photo" else []
    before = proc_io()
    for i in range(n):
        if kind == "detection":
            await agent.outbox.append("detection", {**DETECTION, "n": i})
        elif kind == "checkin":
            await agent.outbox.append("checkin", {**CHECKIN, "n": i}, journal=True)
        else:
            ref = await media.store(photos[i])
            naming = await agent.outbox.append(
                "checkin", {**CHECKIN, "n": i, "photos": [ref]}, journal=True
            )
            await media.send(ref, naming)
    while agent.outbox.depth:
        await asyncio.sleep(0.05)
    after = proc_io()
    size = sum(len(p) for p in photos) / n if photos else 0
    return {
        "wchar": (after["wchar"] - before["wchar"]) / n,
        "write_bytes": (after["write_bytes"] - before["write_bytes"]) / n,
        "photo": size,
    }


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        base = Path(tmp)
        broker = Broker(base / "broker")
        broker.start()
        try:
            state = base / "state"
            data: dict[str, Any] = {
                "device": {"id": "pd-wa", "role": "patrol", "state_dir": str(state)},
                "broker": {"host": "127.0.0.1", "port": broker.port},
            }
            async with Agent(parse(data)) as agent:
                while agent.link.session is None:
                    await asyncio.sleep(0.05)
                media = MediaStore(state, "pd-wa", agent.outbox, quota_bytes=256 << 20)
                print(f"{n} events of each kind, delivered and deleted; bytes per event:")
                print(f"  {'kind':<16}{'wchar':>12}{'write_bytes':>14}{'photo size':>12}")
                for kind in ("checkin", "checkin+photo", "detection"):
                    r = await measure(agent, media, kind, n)
                    print(
                        f"  {kind:<16}{r['wchar']:12.0f}{r['write_bytes']:14.0f}{r['photo']:12.0f}"
                    )
            print(f"  state dir at the end: {dir_bytes(state) / 1024:.0f} KiB")
        finally:
            broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200)
    asyncio.run(main(ap.parse_args().events))
