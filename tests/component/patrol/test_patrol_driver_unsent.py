"""Events the outbox refuses (a full disk) wait in order and are stored once it takes them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.media import MediaStore
from agent.patrol.camera import Camera
from agent.patrol.localapi import LocalApi
from agent.patrol.unsent import Unsent, UnsentQueue
from sync.outbox import Outbox
from tests.kits.aio import wait_until
from tests.kits.patrol import (
    RefusingAppend,
    at,
    camera_cfg,
    checkin_payloads,
    cp,
    fix_at,
    http,
    jpeg_folder,
    outbox_events,
    outbox_topics,
    record,
    rig,
    settle,
    sha,
    stand,
    task,
)

A, B = at(0, 0), at(200, 0)
TASKS = record([task("t-dock", [cp("A", A, dwell=3), cp("B", B, dwell=3)])])
T0 = 1_764_000_000_000
CLOCK = SystemClock(synced=lambda: True)


def stored_events(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """(kind, checkpoint or progress event) of check-ins and progress, in seq order."""
    out = []
    for e in events:
        if e["kind"] == "checkin":
            out.append(("checkin", e["body"]["checkpoint_id"]))
        elif e["kind"] == "patrol":
            out.append(("patrol", e["body"]["event"]))
    return out


async def check_in_at_a_then_refused_at_b(
    driver: Any, outbox: Outbox, fed: Any, monkeypatch: pytest.MonkeyPatch
) -> RefusingAppend:
    """A GPS check-in at A stored; then the outbox refuses while the walker stands at B."""
    t = await stand(fed, A, 6, T0)
    await settle(driver, 6)
    assert fed.feedback == ["ok"]
    fault = RefusingAppend(outbox, monkeypatch)
    await stand(fed, B, 6, t + 60_000)
    await settle(driver, 12)
    return fault


async def test_refused_checkin_waits_then_is_stored_once_with_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        fault = await check_in_at_a_then_refused_at_b(driver, outbox, fed, monkeypatch)
        before = await checkin_payloads(outbox)
        patrol = driver.status()["patrol"]
        # Decided (the engine counts B as checked in) but not stored: queued, check-in first.
        assert [json.loads(p)["body"]["checkpoint_id"] for p in before] == ["A"]
        assert patrol["unsent"] == 2 and fed.feedback == ["ok", "error", "error"]
        assert driver.reporter.counts.checkins == 1  # the refused one is not counted as done
        assert (
            "queued" in patrol["last_error"]
            and patrol["chain"]["seq"] == json.loads(before[0])["seq"]
        )
        saved = json.loads((state / "patrol.json").read_text())
        assert [(u["kind"], u["body"].get("checkpoint_id")) for u in saved["unsent"]] == [
            ("checkin", "B"),
            ("patrol", None),
        ]
        assert "prev" not in saved["unsent"][0]["body"]
        # The idle retry keeps trying (with nothing new decided) and keeps failing.
        tried = fault.refused
        await wait_until(lambda: fault.refused > tried + 1, what="retries")
        assert await checkin_payloads(outbox) == before
        fault.refusing = False
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 0, what="queue drained")
        await driver.drain()
        assert driver.reporter.counts.checkins == 2  # counted once it is stored
        payloads = await checkin_payloads(outbox)
        events = await outbox_events(outbox)
        saved = json.loads((state / "patrol.json").read_text())
    assert [json.loads(p)["body"]["checkpoint_id"] for p in payloads] == ["A", "B"]
    b = json.loads(payloads[1])["body"]
    assert b["prev"] == sha(payloads[0]) and b["method"] == "gps"
    assert stored_events(events) == [
        ("patrol", "started"),
        ("checkin", "A"),
        ("checkin", "B"),
        ("patrol", "completed"),
    ]
    assert saved["unsent"] == [] and saved["chain"]["head"] == sha(payloads[1])
    assert fed.feedback == ["ok", "error", "error"]  # no late "ok": the walker has moved on


async def test_unsent_queue_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await check_in_at_a_then_refused_at_b(driver, outbox, fed, monkeypatch)
        first = await checkin_payloads(outbox)
    monkeypatch.undo()  # the disk has room again after the restart
    assert len(json.loads((state / "patrol.json").read_text())["unsent"]) == 2
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 0, what="queue drained")
        await driver.drain()
        # B is known as checked in: standing there again stores nothing more.
        await stand(fed, B, 6, T0 + 600_000)
        await settle(driver, 6)
        payloads = await checkin_payloads(outbox)
        events = await outbox_events(outbox)
    assert payloads[0] == first[0] and len(payloads) == 2
    assert json.loads(payloads[1])["body"]["prev"] == sha(payloads[0])
    assert stored_events(events)[-2:] == [("checkin", "B"), ("patrol", "completed")]
    assert json.loads((state / "patrol.json").read_text())["unsent"] == []


async def test_stored_before_a_crash_is_not_stored_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent.patrol.persistence

    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        fault = await check_in_at_a_then_refused_at_b(driver, outbox, fed, monkeypatch)

        # Fault injection: the queued events get stored, then patrol.json cannot be written
        # (a crash before the save): the file still lists them as unsent.
        def no_disk(*_a: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
        fault.refusing = False
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 0, what="stored")
        await driver.drain()
    monkeypatch.undo()
    assert len(json.loads((state / "patrol.json").read_text())["unsent"]) == 2
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        # Both found in the journal (the check-in and the progress event behind it): dropped.
        assert driver.status()["patrol"]["unsent"] == 0
        payloads = await checkin_payloads(outbox)
        assert driver.status()["patrol"]["chain"]["head"] == sha(payloads[-1])
        await stand(fed, B, 3, T0 + 600_000)
        await settle(driver, 3)
        events = await outbox_events(outbox)
    assert stored_events(events) == [
        ("patrol", "started"),
        ("checkin", "A"),
        ("checkin", "B"),
        ("patrol", "completed"),
    ]


async def test_manual_checkin_queued_answers_without_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = tmp_path / "api.sock"
    # A long dwell: the one fix given cannot check in by GPS before the button does.
    tasks = record([task("t-dock", [cp("A", A, dwell=600), cp("B", B, dwell=600)])])
    async with (
        rig(tmp_path / "s", tasks) as (driver, outbox, _media, fed),
        LocalApi(driver, socket_path=sock, max_body=1024),
    ):
        await fed.fix(fix_at(at(190, 5), acc=4.0))
        await wait_until(lambda: driver.current_fix()[0] is not None)
        fault = RefusingAppend(outbox, monkeypatch)
        status, _, body = await http(sock, "POST", "/checkin/manual", b"")
        assert (status, body) == (
            201,
            {
                "checked_in": True,
                "task_id": "t-dock",
                "checkpoint_id": "B",
                "id": None,
                "seq": None,
                "queued": True,
            },
        )
        assert await outbox_events(outbox, "checkin") == []
        fault.refusing = False
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 0, what="queue drained")
        await driver.drain()
        status, _, body = await http(sock, "GET", "/status")
        assert body["patrol"]["unsent"] == 0 and body["patrol"]["checkins"] == 1
        stored = await outbox_events(outbox, "checkin")
    assert [c["body"]["method"] for c in stored] == ["manual"]
    assert stored[0]["body"]["prev"] is None


async def test_photo_of_a_queued_checkin_follows_it_when_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = record([task("t-photo", [cp("kiosk", A, tags=("04A1B2C3",), photo=True)])])
    async with (
        Camera(camera_cfg(jpeg_folder(tmp_path / "pics"))) as cam,
        rig(tmp_path / "state", tasks, camera=cam) as (driver, outbox, media, fed),
    ):
        fault = RefusingAppend(outbox, monkeypatch)
        await fed.tag("04A1B2C3")
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 3, what="queued")
        await driver.drain()  # started, the check-in, completed
        # Taken at the checkpoint, kept while the check-in waits (the reaper keeps it too).
        assert driver.status()["patrol"]["photos"] == 1
        named = driver._book.out.unsent.media_ids()
        assert len(named) == 1 and await media.reap(orphan_after_ms=-1, keep=named) == 0
        fault.refusing = False
        await wait_until(lambda: driver.status()["patrol"]["unsent"] == 0, what="queue drained")
        await driver.drain()
        topics = [t for t, _p, _r in await outbox_topics(outbox)]
        checkin = (await outbox_events(outbox, "checkin"))[0]
    mid = checkin["body"]["photos"][0]["media_id"]
    at_checkin = topics.index("grid/v1/pd-0042/evt/checkin")
    chunks = [i for i, t in enumerate(topics) if t.startswith(f"grid/v1/pd-0042/media/{mid}/")]
    assert chunks and at_checkin < min(chunks)
    assert topics.index("grid/v1/pd-0042/evt/media") > max(chunks)


def _progress(n: int) -> Unsent:
    return Unsent("patrol", {"task_id": "t", "event": "checkpoint_missed", "checkpoint_id": f"{n}"})


def _checkin(n: int) -> Unsent:
    return Unsent("checkin", {"task_id": "t", "checkpoint_id": f"{n}", "photos": []})


def test_bound_drops_oldest_progress_never_a_checkin(caplog: pytest.LogCaptureFixture) -> None:
    q = UnsentQueue(limit=3)
    for item in (_progress(1), _checkin(2), _progress(3), _checkin(4), _progress(5)):
        q.push(item)
    assert [u.body["checkpoint_id"] for u in UnsentQueue.from_json(q.to_json())._items] == [
        "2",
        "4",
        "5",
    ]
    for n in (6, 7):
        q.push(_checkin(n))
    # The progress events went first, oldest first; check-ins stay even beyond the bound.
    assert [u.kind for u in q._items] == ["checkin"] * 4
    assert "dropped patrol t checkpoint_missed" in caplog.text


def test_malformed_unsent_entries_are_logged_and_left(caplog: pytest.LogCaptureFixture) -> None:
    good = _checkin(1).to_json()
    caplog.set_level(logging.ERROR)
    q = UnsentQueue.from_json(
        [
            good,
            {"kind": "alarm", "body": {}},
            {"kind": "checkin", "body": {"photos": [{"nope": 1}]}},
            {"kind": "checkin", "body": {"prev": None}},
            {"kind": "patrol", "body": {}, "priority": "1"},
            "junk",
        ]
    )
    assert q.to_json() == [good]
    assert caplog.text.count("is malformed") == 5
    assert len(UnsentQueue.from_json({"not": "a list"})) == 0
    assert len(UnsentQueue.from_json(None)) == 0


async def test_damaged_unsent_in_state_file_does_not_stop_the_driver(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, _outbox, _media, fed):
        await stand(fed, A, 6, T0)
        await settle(driver, 6)
    doc = json.loads((state / "patrol.json").read_text())
    (state / "patrol.json").write_text(json.dumps({**doc, "unsent": 42}))
    async with rig(state, TASKS) as (driver, _outbox, _media, _fed):
        assert driver.status()["patrol"]["unsent"] == 0
        assert driver.tasks_view()["tasks"][0]["checkpoints"][0]["state"] == "checked"
    assert "unsent events 42 are malformed" in caplog.text


async def test_photos_of_queued_events_are_not_reaped(tmp_path: Path) -> None:
    async with Outbox(tmp_path, "pd-0042", stamp=CLOCK.stamp, budget_bytes=1 << 20) as ob:
        media = MediaStore(tmp_path, "pd-0042", ob, quota_bytes=1 << 20)
        kept = await media.store(b"\xff\xd8kept")
        orphan = await media.store(b"\xff\xd8orphan")
        assert await media.reap(orphan_after_ms=-1, keep={kept["media_id"]}) == 1
        assert media.path(kept["sha256"]).exists()
        assert not media.path(orphan["sha256"]).exists()
