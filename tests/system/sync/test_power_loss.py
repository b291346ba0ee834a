"""Power loss mid-write (issue 22 point 5): the process is cut during an outbox WAL checkpoint
and during a photo write; on restart nothing that was acknowledged is lost.

The kit (`tests/kits/kill_midwrite.py`) prints a line for each acknowledged write; the test
SIGKILLs it at the named moment, then starts a real patrol agent on the same state dir and
checks that the broker receives every acknowledged check-in (and each acknowledged photo whole).
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.paths import REPO

ROOT = REPO


def start_kit(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kits.kill_midwrite", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill_in_checkpoint(state: Path, nth: int) -> tuple[list[str], bool]:
    """Run the checkpoint kit; SIGKILL it as it announces its `nth` checkpoint.

    Returns the acknowledged check-in ids and whether the kill landed inside the checkpoint
    (no `ckpt end` after the `ckpt begin` it was killed at).
    """
    proc = start_kit("checkpoint", str(state), DEV)
    assert proc.stdout is not None
    acked: list[str] = []
    begins = 0
    for line in proc.stdout:
        parts = line.split()
        if parts[:1] == ["ack"] and len(parts) == 3:
            acked.append(parts[2])
        elif parts[:2] == ["ckpt", "begin"]:
            begins += 1
            if begins == nth:
                proc.kill()
                break
    rest, _ = proc.communicate()
    inside = True
    for line in rest.splitlines():
        parts = line.split()
        if parts[:1] == ["ack"] and len(parts) == 3:  # a line cut by the kill is not a promise
            acked.append(parts[2])
        inside = inside and parts[:2] != ["ckpt", "end"]
    return acked, inside


async def drain_to_broker(state: Path, broker: Broker, promised: set[str]) -> Watcher:
    """Start the patrol agent on `state`; wait until the broker has every promised event."""
    w = Watcher.of(broker)
    async with Agent(make_config(state, broker)) as agent:
        await wait_until(lambda: agent.outbox.depth == 0, timeout=120, what="backlog drained")
        await wait_until(lambda: promised <= {e["id"] for e in w.events()}, what="all seen")
    return w


async def test_cut_during_wal_checkpoint_loses_nothing_acknowledged(
    broker: Broker, tmp_path: Path
) -> None:
    rng = random.Random(20261207)
    state = tmp_path / "state"
    promised: set[str] = set()
    inside = 0
    for _ in range(4):
        acked, landed = kill_in_checkpoint(state, rng.choice([1, 2]))
        promised.update(acked)
        inside += landed
        db = sqlite3.connect(state / "outbox.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
    assert inside, "no kill landed inside a checkpoint: the test did not test it"
    w = await drain_to_broker(state, broker, promised)
    w.close()


async def test_cut_during_photo_write_loses_no_acknowledged_photo(
    broker: Broker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    photos: dict[str, tuple[str, str]] = {}  # check-in id -> (media id, sha256)
    for cut_at in (3, 2):
        proc = start_kit("photo", str(state), DEV, str(cut_at))
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == -9  # the fault cut the process inside the photo write
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == ["ack"] and len(parts) == 4:
                photos[parts[1]] = (parts[2], parts[3])
    assert len(photos) == 1 + 2  # cut_at - 1 acknowledged before each cut
    assert list((state / "media").glob("*.tmp")), "the cut left its half-written file"
    w = await drain_to_broker(state, broker, set(photos))
    assert not list((state / "media").glob("*.tmp")), "the agent's start removes half-writes"

    # The chunks follow their check-ins and reach this watcher after the broker has them.
    def whole() -> bool:
        return all(w.media_whole(DEV, m, sha) for m, sha in photos.values())

    await wait_until(whole, what="every acknowledged photo whole at the watcher")
    for media_id, sha in photos.values():
        chunks = sorted(
            (int(t.rsplit("/", 1)[1]), p)
            for t, p, _ in w.messages
            if t.startswith(f"grid/v1/{DEV}/media/{media_id}/")
        )
        data = b"".join(p for _, p in dict(chunks).items())
        assert hashlib.sha256(data).hexdigest() == sha, f"photo {media_id} not whole"
    w.close()
