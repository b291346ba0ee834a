"""The outbox rewrites the broker's limits call for: re-chunking a whole photo, setting aside."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from agent.clock import SystemClock
from agent.media import MediaStore
from sync import outbox_db
from sync.messages import Stored
from sync.outbox import Outbox

CLOCK = SystemClock(synced=lambda: True)
DEV = "pd-0042"


async def photo(ob: Outbox, state: Path, size: int) -> tuple[dict, Stored]:
    media = MediaStore(state, DEV, ob, quota_bytes=10_000_000)
    ref = await media.store(os.urandom(size))
    naming = await ob.append("incident", {"photos": [ref]})
    await media.send(ref, naming)
    return ref, naming


async def counts_match(ob: Outbox) -> None:
    assert ob._w is not None
    assert (ob.depth, ob.bytes) == await ob._in_writer(outbox_db.counts, ob._w.conn)


async def test_whole_photo_is_rechunked_and_its_media_event_follows(tmp_path: Path) -> None:
    async with Outbox(tmp_path, DEV, stamp=CLOCK.stamp, budget_bytes=1 << 30) as ob:
        ref, _ = await photo(ob, tmp_path, 150_000)
        rows = await ob.fetch((-1, -1), 100)
        event_before = [r for r in rows if r.topic.endswith("/evt/media")][0]
        assert await ob.rechunk(ref["media_id"], 30 * 1024) == "done"
        await counts_match(ob)
        rows = [r for r in await ob.fetch((-1, -1), 100) if r.group == ref["media_id"]]
    chunks, event = rows[:-1], rows[-1]
    assert [r.topic.rsplit("/", 1)[1] for r in chunks] == [str(n) for n in range(5)]
    assert all(len(r.payload) <= 30 * 1024 for r in chunks)
    data = b"".join(r.payload for r in chunks)
    assert len(data) == 150_000 and event.topic.endswith("/evt/media")
    before, after = json.loads(event_before.payload), json.loads(event.payload)
    assert after["body"]["chunks"] == 5 and before["body"]["chunks"] == 3
    # Only `chunks` changed: same id, seq, time fields and every other byte.
    before["body"]["chunks"] = 5
    assert before == after
    assert event.payload == event_before.payload.replace(b'"chunks":3', b'"chunks":5')


async def test_a_photo_with_an_acknowledged_chunk_cannot_be_rechunked(tmp_path: Path) -> None:
    async with Outbox(tmp_path, DEV, stamp=CLOCK.stamp, budget_bytes=1 << 30) as ob:
        ref, _ = await photo(ob, tmp_path, 150_000)
        other, _ = await photo(ob, tmp_path, 1000)
        rows = [r for r in await ob.fetch((-1, -1), 100) if r.group == ref["media_id"]]
        media_seq = json.loads(rows[-1].payload)["seq"]
        await ob.delete([rows[0].rowid])  # chunk 0 was acknowledged under a larger limit
        assert await ob.rechunk(ref["media_id"], 30 * 1024) == "partial"
        body = {"type": "message_set_aside", "media_id": ref["media_id"]}
        note = await ob.set_aside(body, [rows[1].rowid], ref["media_id"])
        await counts_match(ob)
        left = await ob.fetch((-1, -1), 100)
    assert not [r for r in left if r.group == ref["media_id"]]
    assert [r for r in left if r.group == other["media_id"]]  # the other photo is untouched
    notice = [json.loads(r.payload) for r in left if r.payload == note.payload][0]
    assert notice["body"]["seq"] == media_seq  # the media event went with it: its seq is named


async def test_a_photo_whose_media_event_is_not_stored_is_incomplete(tmp_path: Path) -> None:
    async with Outbox(tmp_path, DEV, stamp=CLOCK.stamp, budget_bytes=1 << 30) as ob:
        await ob.append_raw(
            "media_chunk", f"grid/v1/{DEV}/media/m/0", b"x" * 10, priority=4, group="m"
        )
        assert await ob.rechunk("m", 4096) == "incomplete"
        await counts_match(ob)
    db = sqlite3.connect(tmp_path / "outbox.db")
    assert db.execute("SELECT count(*) FROM outbox WHERE grp = 'm'").fetchone()[0] == 1
