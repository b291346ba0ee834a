"""Benchmark: bytes written to storage per event, from commit to delivery and deletion.

Run: .venv/bin/python bench/bench_write_amplification.py [--events 200]
A real agent (patrol role, no devices) against a local Mosquitto stores N events of each kind,
the publisher delivers them, the outbox deletes them and a checkpoint copies the WAL into the
database file. Reported per event: `wchar` (bytes
handed to write(2), every file: SQLite database, WAL, journal, media) and `write_bytes` (what
reached the block layer; 0 on tmpfs) from /proc/self/io, and the state dir's size at the end.
Kinds: a check-in (journalled, the journal released after it as the patrol driver does once
patrol.json is saved; patrol.json itself is not counted), a detection, an incident with one
~97 KB photo and a check-in with one (each: the event, the media file, its chunks and its
`media` event).
Beside each figure: the message bytes per event (every payload the outbox stored for it) and
the target, 4 x the message bytes + one database page (issue 19).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sqlite3
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
INCIDENT = {"category": "blocked_exit", "note": "fire exit chained", "lat": 30.1, "lon": 120.2}
DETECTION = {"camera_id": "cam-1", "rule": "crowd", "zone": "plaza", "state": "start", "count": 6}


PAGE = 4096  # the outbox database's page size


def dir_bytes(path: Path) -> int:
    """Total size of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def store_one(agent: Agent, media: MediaStore, kind: str, i: int, pic: bytes) -> None:
    """Store one event of `kind` (with its photo) the way the agent does."""
    if kind == "detection":
        await agent.outbox.append("detection", {**DETECTION, "n": i})
    elif kind == "checkin":
        stored = await agent.outbox.append("checkin", {**CHECKIN, "n": i}, journal=True)
        await release(agent, stored.seq)
    else:
        ref = await media.store(pic)
        event, body = ("incident", INCIDENT) if kind == "incident+photo" else ("checkin", CHECKIN)
        naming = await agent.outbox.append(
            event, {**body, "n": i, "photos": [ref]}, journal=event == "checkin"
        )
        if event == "checkin":
            await release(agent, naming.seq)
        await media.send(ref, naming)


async def release(agent: Agent, seq: int) -> None:
    """What the patrol driver does once patrol.json is saved: release the journal up to the
    check-in just stored, keeping that one (the chain head)."""
    try:
        await agent.outbox.journal_release(seq, keep_seq=seq, wait=False)
    except TypeError:  # an outbox from before issue 19: the release commits on its own
        await agent.outbox.journal_release(seq, keep_seq=seq)


def checkpoint(db: Path) -> None:
    """Copy the WAL into the database file, from this process (so /proc/self/io counts it)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()


async def measure(agent: Agent, media: MediaStore, kind: str, n: int) -> dict[str, float]:
    """Store n events of `kind`, wait until all are delivered and deleted; bytes per event."""
    photos = [photo(i) for i in range(n)] if kind.endswith("+photo") else []
    before, stored = proc_io(), getattr(agent.outbox, "stored_bytes", 0)
    for i in range(n):
        await store_one(agent, media, kind, i, photos[i] if photos else b"")
    while agent.outbox.depth:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # the last deletes commit after the outbox's delay
    # The pages go into the database file too: that copy is counted (PASSIVE never waits).
    await asyncio.to_thread(checkpoint, agent.cfg.device.state_dir / "outbox.db")
    after = proc_io()
    return {
        "wchar": (after["wchar"] - before["wchar"]) / n,
        "write_bytes": (after["write_bytes"] - before["write_bytes"]) / n,
        "message": (getattr(agent.outbox, "stored_bytes", 0) - stored) / n,
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
                print(
                    f"  {'kind':<16}{'wchar':>10}{'write_bytes':>13}{'message':>10}"
                    f"{'target':>10}{'wchar/target':>14}"
                )
                for kind in ("checkin", "detection", "incident+photo", "checkin+photo"):
                    r = await measure(agent, media, kind, n)
                    target = 4 * r["message"] + PAGE
                    print(
                        f"  {kind:<16}{r['wchar']:10.0f}{r['write_bytes']:13.0f}"
                        f"{r['message']:10.0f}{target:10.0f}{r['wchar'] / target:14.2f}"
                    )
            print(f"  state dir at the end: {dir_bytes(state) / 1024:.0f} KiB")
        finally:
            broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200)
    asyncio.run(main(ap.parse_args().events))
