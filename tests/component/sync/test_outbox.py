"""The SQLite outbox on its own: seq, budget and eviction, quarantine, a full disk."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent.clock import SystemClock
from agent.errors import MediaRefused, StoreFull
from sync.outbox import Outbox

CLOCK = SystemClock(synced=lambda: True)


def outbox(state: Path, budget: int = 1 << 30) -> Outbox:
    return Outbox(state, "pd-0042", stamp=CLOCK.stamp, budget_bytes=budget)


async def all_rows(ob: Outbox) -> list[dict]:
    rows = await ob.fetch((-1, -1), 100_000)
    return [
        json.loads(r.payload)
        for r in rows
        if r.topic.startswith("grid/v1/pd-0042/evt") or r.topic.endswith("/ack")
    ]


async def test_new_state_dir_starts_with_state_reset(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        s = await ob.append("checkin", {"a": 1})
        rows = await all_rows(ob)
    assert rows[0]["body"] == {"a": 1} and s.seq == 2  # send order: priority 1 before 3
    notice = [r for r in rows if r["kind"] == "notice"][0]
    assert notice["seq"] == 1 and notice["body"] == {"type": "state_reset"}
    async with outbox(tmp_path) as ob:
        assert (await ob.append("checkin", {"a": 2})).seq == 3  # no second state_reset
        assert ob.depth == 3


async def test_eviction_drops_oldest_lowest_priority_and_says_so(tmp_path: Path) -> None:
    budget = 64 * 1024
    async with outbox(tmp_path, budget) as ob:
        checkins = [await ob.append("checkin", {"i": i}) for i in range(30)]
        detections = [await ob.append("detection", {"i": i, "pad": "x" * 2000}) for i in range(40)]
        await ob.append("alarm", {"type": "sos", "pad": "y" * 3000})
        await ob._in_writer(lambda: None)  # after every write queued so far
        rows = await all_rows(ob)
        kept = {r["id"] for r in rows}
        assert {c.id for c in checkins} <= kept  # priority 1 is never evicted
        evicted = [d for d in detections if d.id not in kept]
        assert evicted and evicted == detections[: len(evicted)]  # the oldest went first
        notices = [
            r["body"]
            for r in rows
            if r["kind"] == "notice" and r["body"]["type"] == "outbox_evicted"
        ]
        assert notices
        explained = {s for n in notices for a, b in n["seq_ranges"] for s in range(a, b + 1)}
        present = {r["seq"] for r in rows}
        # Every permanent seq gap is explained by a surviving eviction notice.
        assert set(range(1, max(present) + 1)) - present == explained
        assert {d.seq for d in evicted} <= explained
        assert max(n["kinds"]["detection"] for n in notices) >= 1
        assert ob.bytes <= budget + 4096  # within budget but for the last notice itself


async def test_media_refused_when_only_priority_0_1_left(tmp_path: Path) -> None:
    budget = 64 * 1024
    async with outbox(tmp_path, budget) as ob:
        for i in range(40):
            await ob.append("checkin", {"i": i, "pad": "z" * 2000})  # over budget: kept anyway
        with pytest.raises(MediaRefused):
            await ob.append_raw(
                "media", "grid/v1/pd-0042/media/x/0", b"\0" * 1000, priority=4, group="x"
            )
        assert ob.media_refused
        assert ob.depth == 41  # 40 check-ins and the state_reset notice: nothing lost
        rows = await ob.fetch((-1, -1), 100)
        await ob.delete([r.rowid for r in rows])
        assert not ob.media_refused


async def test_damaged_database_is_quarantined_and_seq_not_reused(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        last = [await ob.append("checkin", {"i": i}) for i in range(5)][-1]
    db = tmp_path / "outbox.db"
    raw = bytearray(db.read_bytes())
    raw[0:100] = b"garbage!" * 12 + b"junk"  # destroy the SQLite header
    db.write_bytes(bytes(raw))
    (tmp_path / "outbox.db-wal").unlink(missing_ok=True)
    async with outbox(tmp_path) as ob:
        after = await ob.append("checkin", {"i": "after"})
        rows = await all_rows(ob)
    moved = list(tmp_path.glob("outbox.db.corrupt-*"))
    assert moved and moved[0].read_bytes()[:8] == b"garbage!"  # kept, not deleted
    notice = [r for r in rows if r["kind"] == "notice"][0]["body"]
    assert notice["type"] == "store_quarantined" and notice["file"] == moved[0].name
    assert after.seq > last.seq  # never reused


async def pragma(ob: Outbox, setting: str) -> int:
    """Run a PRAGMA on the outbox's writing connection (on its thread): its first value."""
    assert ob._w is not None
    conn = ob._w.conn
    row = await ob._in_writer(lambda: conn.execute(f"PRAGMA {setting}").fetchone())
    return int(row[0]) if row else 0


async def test_full_disk_refuses_cleanly_and_keeps_queued(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        kept = [await ob.append("checkin", {"i": i}) for i in range(10)]
        # Cap the database file: SQLite then answers SQLITE_FULL like a full disk would.
        pages = await pragma(ob, "page_count")
        await pragma(ob, f"max_page_count={pages}")
        with pytest.raises(StoreFull):
            for i in range(10_000):
                await ob.append("checkin", {"i": i, "pad": "q" * 4000})
        await pragma(ob, "max_page_count=1000000")
        later = await ob.append("checkin", {"i": "later"})
        ids = {r["id"] for r in await all_rows(ob)}
    assert {k.id for k in kept} <= ids and later.id in ids
    seqs = sorted(
        r[0]
        for r in sqlite3.connect(tmp_path / "outbox.db").execute(
            "SELECT seq FROM outbox WHERE seq IS NOT NULL"
        )
    )
    assert seqs == list(range(1, len(seqs) + 1))  # a refused append used no seq


async def test_journal_commits_with_the_row_and_outlives_its_delete(tmp_path: Path) -> None:
    budget = 64 * 1024
    async with outbox(tmp_path, budget) as ob:
        plain = await ob.append("checkin", {"i": "plain"})
        kept = [await ob.append("checkin", {"i": i}, journal=True) for i in range(3)]
        await ob.append("patrol", {"i": "p"}, journal=True)
        # The journal is outside the byte budget: only outbox rows are counted.
        depth, size = ob.depth, ob.bytes
        assert depth == 6  # state_reset notice, plain, 3 check-ins, patrol
        journal = await ob.journal_after(None, "checkin")
        assert [(j.seq, j.payload) for j in journal] == [(s.seq, s.payload) for s in kept]
        assert [j.seq for j in await ob.journal_after(kept[0].seq, "checkin")] == [
            s.seq for s in kept[1:]
        ]
        assert [j.kind for j in await ob.journal_after(None, "patrol")] == ["patrol"]
        # Published and acknowledged: the outbox rows go, the journal keeps its copies.
        await ob.delete([r.rowid for r in await ob.fetch((-1, -1), 100)])
        assert ob.depth == 0 and ob.bytes == 0 and size > 0
        # Eviction under a full budget never touches the journal.
        for i in range(60):
            await ob.append("detection", {"i": i, "pad": "x" * 2000})
        assert len(await ob.journal_after(None, "checkin")) == 3
        await ob.journal_release(kept[1].seq)
        assert [j.seq for j in await ob.journal_after(None, "checkin")] == [kept[2].seq]
        assert plain.seq not in {j.seq for j in await ob.journal_after(None, "checkin")}
    async with outbox(tmp_path, budget) as ob:  # durable across a restart
        assert [j.payload for j in await ob.journal_after(None, "checkin")] == [kept[2].payload]


async def test_refused_commit_journals_nothing(tmp_path: Path) -> None:
    async with outbox(tmp_path) as ob:
        pages = await pragma(ob, "page_count")
        await pragma(ob, f"max_page_count={pages + 40}")  # room for a few
        with pytest.raises(StoreFull):
            for i in range(10_000):
                await ob.append("checkin", {"i": i, "pad": "q" * 4000}, journal=True)
        journalled = {j.seq for j in await ob.journal_after(None, "checkin")}
        stored = {json.loads(r.payload)["seq"] for r in await ob.fetch((-1, -1), 100_000)}
        await pragma(ob, "max_page_count=1000000")
    # One transaction: every journalled check-in has its outbox row and the other way round.
    assert journalled and journalled == stored - {1}
