"""No acknowledged append is lost when the writer process is killed with SIGKILL, many times."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.paths import REPO

ROOT = REPO


def run_and_kill(state: Path, rng: random.Random, dev: str = "pd-kill") -> list[tuple[int, str]]:
    """Start the writer, let it append for a random while, SIGKILL it; return what it acked."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.kits.kill_writer", str(state), str(rng.choice([1, 8])), dev],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    # The kill point is random, not a timing assertion.
    time.sleep(rng.uniform(0.02, 0.3))
    proc.kill()
    out, _ = proc.communicate()
    acked = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":  # a line cut by the kill is not a promise
            acked.append((int(parts[1]), parts[2]))
    return acked


@pytest.mark.slow
def test_kill9_never_loses_an_acknowledged_append(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    state = tmp_path / "state"
    promised: dict[str, int] = {}
    for _ in range(25):
        for seq, msg_id in run_and_kill(state, rng):
            promised[msg_id] = seq
    assert len(promised) > 100  # the writer really ran between kills
    db = sqlite3.connect(state / "outbox.db")
    rows = db.execute("SELECT seq, payload FROM outbox").fetchall()
    stored = {}
    for seq, payload in rows:
        msg_id = payload.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
        stored[msg_id] = seq
    missing = set(promised) - set(stored)
    assert not missing, f"{len(missing)} acknowledged appends lost"
    assert all(stored[i] == s for i, s in promised.items())
    seqs = sorted(stored.values())
    # Never reused, never skipped: 1..N exactly (a killed, uncommitted batch used no seq).
    assert seqs == list(range(1, len(seqs) + 1))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_backlog_of_killed_writers_reaches_each_broker(
    any_broker: Broker, tmp_path: Path
) -> None:
    """What SIGKILLed writers were promised is all delivered once an agent starts on it."""
    rng = random.Random(20261204)
    state = tmp_path / "state"
    promised: dict[str, int] = {}
    for _ in range(4):
        promised.update({i: s for s, i in run_and_kill(state, rng, DEV)})
    assert promised
    w = Watcher.of(any_broker)
    async with Agent(make_config(state, any_broker)) as agent:
        await wait_until(lambda: agent.outbox.depth == 0, timeout=120, what="backlog drained")
        await wait_until(lambda: set(promised) <= {e["id"] for e in w.events()}, what="all seen")
    got = {e["id"]: e["seq"] for e in w.events()}
    assert all(got[i] == s for i, s in promised.items())
    w.close()
