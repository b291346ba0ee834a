"""Flash wear of the outbox: what one append writes, deletes after PUBACKs in batches, and a
database of the first layout carried over (docs/metrics.md, bytes written per event)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.errors import StoreError
from agent.runtime.agent import Agent
from sync import outbox_writer
from sync.outbox import Outbox
from tests.kits.agents import make_config
from tests.kits.aio import wait_until

CLOCK = SystemClock(synced=lambda: True)
DEV = "pd-0042"
FRAME = 4096 + 24  # one WAL frame: a page and its header


def outbox(state: Path) -> Outbox:
    return Outbox(state, DEV, stamp=CLOCK.stamp, budget_bytes=1 << 30)


def wal_size(state: Path) -> int:
    return (state / "outbox.db-wal").stat().st_size


async def test_an_append_writes_one_page_and_carries_the_deletes(tmp_path: Path) -> None:
    """PUBACKs coming in between appends: each append adds one page to the WAL, and the
    delete of the rows acknowledged since rides in its transaction (no order index, counter,
    meta or journal page, no delete commit of its own)."""
    async with Outbox(
        tmp_path, DEV, stamp=CLOCK.stamp, budget_bytes=1 << 30, delete_delay_s=60
    ) as ob:
        frames, deletes, asked = [], [], set()
        for i in range(40):
            acked = [r.rowid for r in await ob.fetch((-1, -1), 100) if r.rowid not in asked]
            asked.update(acked)
            deletes.append(asyncio.create_task(ob.delete(acked)))
            await asyncio.sleep(0)  # the PUBACKs' delete is queued first
            before = wal_size(tmp_path)
            await ob.append("incident" if i % 2 else "detection", {"i": i, "pad": "p" * 200})
            frames.append((wal_size(tmp_path) - before) // FRAME)
        await asyncio.wait_for(asyncio.gather(*deletes), 10)  # each rode with the next append
        assert ob.depth == 1  # the last append: not acknowledged
    assert frames == [1] * 40


async def test_the_commit_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    commit = outbox_writer.Writer.commit

    def spy(self: outbox_writer.Writer, *args: object) -> outbox_writer.Commit:
        threads.append(threading.current_thread().name)
        return commit(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox_writer.Writer, "commit", spy)
    async with outbox(tmp_path) as ob:
        await ob.append("checkin", {"a": 1})
    assert threads and all(t.startswith("outbox-write") for t in threads)


async def test_a_priority_outside_the_rowid_range_is_refused_alone(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        try:
            await ob.append("incident", {"a": 1}, priority=200)
        except StoreError as exc:
            assert "priority 200" in str(exc)
        else:
            raise AssertionError("stored")
        assert (await ob.append("incident", {"a": 2})).seq == 2  # the refused one took none


async def test_deletes_after_pubacks_ride_with_the_appends(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real agent delivering appends as they come: no write transaction of its own per
    PUBACK; the last ones go in one commit after the delay."""
    commits: list[tuple[int, int]] = []
    commit = outbox_writer.Writer.commit

    def spy(self: outbox_writer.Writer, batch: Any, hist: bool, acked: Any, release: Any) -> Any:
        commits.append((len(batch), len(acked)))
        return commit(self, batch, hist, acked, release)

    cfg = make_config(tmp_path / "state", broker)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        await wait_until(lambda: agent.outbox.depth == 0)
        monkeypatch.setattr(outbox_writer.Writer, "commit", spy)
        for i in range(60):
            await agent.outbox.append("detection", {"i": i})
            await asyncio.sleep(0.005)  # its PUBACK comes back meanwhile
        await wait_until(lambda: agent.outbox.depth == 0)
    appends = sum(n for n, _ in commits)
    assert appends == 60 and sum(a for _, a in commits) == 60
    # PUBACKs never committed alone but the last ones, after the delay.
    assert len([c for c in commits if c[0] == 0]) <= 2, str(commits)


# The first layout, as sync/outbox_db.py created it before the rowid became the send order.
V1_SCHEMA = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE outbox (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL, seq INTEGER,
    kind TEXT NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL,
    hist INTEGER NOT NULL, created_ms INTEGER NOT NULL, grp TEXT
);
CREATE INDEX outbox_order ON outbox(priority, rowid);
CREATE INDEX outbox_grp ON outbox(grp) WHERE grp IS NOT NULL;
CREATE TABLE journal (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TRIGGER outbox_seq AFTER INSERT ON outbox WHEN NEW.seq IS NOT NULL
BEGIN
    INSERT INTO meta(k, v) VALUES('seq', NEW.seq)
        ON CONFLICT(k) DO UPDATE SET v = max(v, excluded.v);
END;
"""


def v1_database(path: Path) -> None:
    """Seq 1-2 delivered (2 journalled, kept), 3 a detection, 4 a journalled check-in."""
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)

    def row(prio: int, seq: int, kind: str) -> tuple[object, ...]:
        payload = json.dumps({"seq": seq, "kind": kind}).encode()
        return (prio, seq, kind, f"grid/v1/{DEV}/evt/{kind}", payload, 100, 0, 1, None)

    sql = (
        "INSERT INTO outbox(priority, seq, kind, topic, payload, size, hist, created_ms, grp)"
        " VALUES (?,?,?,?,?,?,?,?,?)"
    )
    for r in (row(1, 1, "checkin"), row(1, 2, "checkin"), row(2, 3, "detection")):
        db.execute(sql, r)
    db.execute("INSERT INTO journal VALUES (2, 'checkin', ?)", (b'{"seq": 2}',))
    db.execute("DELETE FROM outbox WHERE seq IN (1, 2)")  # PUBACKed
    db.execute(sql, row(1, 4, "checkin"))
    db.execute("INSERT INTO journal VALUES (4, 'checkin', ?)", (row(1, 4, "checkin")[4],))
    db.commit()
    db.close()


async def test_a_database_of_the_first_layout_is_carried_over(tmp_path: Path) -> None:
    v1_database(tmp_path / "outbox.db")
    async with outbox(tmp_path) as ob:
        rows = await ob.fetch((-1, -1), 100)
        assert [json.loads(r.payload)["seq"] for r in rows] == [4, 3]  # send order kept
        assert (ob.depth, ob.bytes) == (2, 200)
        assert [j.seq for j in await ob.journal_after(None, "checkin")] == [2, 4]
        assert (await ob.append("checkin", {"a": 1})).seq == 5  # no seq reused
        await ob.delete([r.rowid for r in rows])
        await ob.journal_release(4)
        assert await ob.journal_after(None, "checkin") == []
        assert ob.depth == 1
    db = sqlite3.connect(tmp_path / "outbox.db")
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "journal" not in names and "outbox_order" not in names and "outbox_seq" not in names


async def test_seq_continues_after_every_row_was_deleted(tmp_path: Path) -> None:
    """No meta row per commit: the last row with a seq stays, emptied, as the mark."""
    async with outbox(tmp_path) as ob:
        for i in range(5):
            await ob.append("detection", {"i": i})
        await ob.delete([r.rowid for r in await ob.fetch((-1, -1), 100)], at_once=True)
        assert ob.depth == 0 and ob.seq == 6
    assert ob.seq == 6  # still readable once closed (the demo's summary reads it then)
    async with outbox(tmp_path) as ob:
        assert (await ob.append("detection", {"i": "next"})).seq == 7  # no reuse, no jump
        assert ob.startup_notices == []
        await ob.delete([r.rowid for r in await ob.fetch((-1, -1), 100)], at_once=True)
    db = sqlite3.connect(tmp_path / "outbox.db")
    assert db.execute("SELECT seq, acked, length(payload) FROM outbox").fetchall() == [(7, 1, 0)]
    db.close()


async def test_a_journal_release_rides_with_the_next_append(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        first = await ob.append("checkin", {"i": 1}, journal=True)
        await ob.delete([r.rowid for r in await ob.fetch((-1, -1), 100)], at_once=True)
        await ob.journal_release(first.seq, wait=False)  # returns at once, nothing written yet
        assert [j.seq for j in await ob.journal_after(None, "checkin")] == [first.seq]
        second = await ob.append("checkin", {"i": 2}, journal=True)
        assert [j.seq for j in await ob.journal_after(None, "checkin")] == [second.seq]
