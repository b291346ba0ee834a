"""The check-in hash chain and patrol progress across restarts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import agent.patrol.persistence
from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.documents.state import DocState
from agent.runtime.agent import Agent
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.patrol import (
    at,
    checkin_payloads,
    cp,
    journalled,
    outbox_events,
    patrol_of,
    record,
    rig,
    sha,
    tap,
    task,
)

TAGS = ["04000001", "04000002", "04000003", "04000004"]
TASKS = record(
    [task("t-round", [cp(f"cp{i}", at(100 * i, 0), tags=(t,)) for i, t in enumerate(TAGS)])]
)


async def scan(fed, driver, uid: str, feedback: int) -> None:  # type: ignore[no-untyped-def]
    await fed.tag(uid)
    await wait_until(lambda: len(fed.feedback) == feedback, what=f"scan {uid}")
    await driver.drain()


async def test_chain_and_progress_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        await scan(fed, driver, TAGS[1], 2)
        before = await checkin_payloads(outbox)
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        assert driver.status()["patrol"]["chain"]["head"] == sha(before[-1])
        await scan(fed, driver, TAGS[0], 1)  # checked in before the restart: not again
        assert fed.feedback == ["ok"] and len(await checkin_payloads(outbox)) == 2
        await scan(fed, driver, TAGS[2], 2)
        after = await checkin_payloads(outbox)
        patrol = [e["body"]["event"] for e in await outbox_events(outbox, "patrol")]
    assert len(after) == 3 and after[:2] == before
    bodies = [json.loads(p)["body"] for p in after]
    assert bodies[0]["prev"] is None
    assert bodies[1]["prev"] == sha(after[0]) and bodies[2]["prev"] == sha(after[1])
    assert patrol == ["started"]  # not raised again after the restart


async def test_crash_between_outbox_commit_and_state_save_is_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        saved = (state / "patrol.json").read_bytes()

        # Fault injection: the state file cannot be written any more (as if power went out
        # right after the outbox commit), also not at shutdown.
        def no_disk(*_a: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
        await scan(fed, driver, TAGS[1], 2)
        assert "patrol state not saved" in driver.status()["patrol"]["last_error"]
    assert (state / "patrol.json").read_bytes() == saved  # the file lags the outbox
    monkeypatch.undo()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        # The head and the progress come back from the outbox's copy of the check-in.
        committed = await checkin_payloads(outbox)
        assert driver.status()["patrol"]["chain"] == {
            "head": sha(committed[-1]),
            "seq": json.loads(committed[-1])["seq"],
        }
        await scan(fed, driver, TAGS[1], 1)  # already checked in: no duplicate
        await scan(fed, driver, TAGS[3], 2)
        payloads = await checkin_payloads(outbox)
    assert [json.loads(p)["body"]["checkpoint_id"] for p in payloads] == ["cp0", "cp1", "cp3"]
    assert json.loads(payloads[2])["body"]["prev"] == sha(payloads[1])


def no_disk(*_a: object) -> None:
    """Fault injection for write_json: the state file cannot be written."""
    raise OSError(28, "No space left on device")


async def test_journal_is_released_after_a_save_and_kept_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        # patrol.json has it: the copies went, except the chain head's own.
        assert await journalled(outbox) == await checkin_payloads(outbox)
        monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
        await scan(fed, driver, TAGS[1], 2)
        assert await journalled(outbox) == await checkin_payloads(outbox)  # nothing released
    db = sqlite3.connect(state / "outbox.db")
    journal = "SELECT count(*) FROM outbox WHERE jrnl = 1 AND kind='checkin'"
    assert db.execute(journal).fetchone() == (2,)
    db.close()
    monkeypatch.undo()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        assert len(await journalled(outbox)) == 2  # until the next successful save
    saved = json.loads((state / "patrol.json").read_text())
    db = sqlite3.connect(state / "outbox.db")
    journal = "SELECT seq FROM outbox WHERE jrnl = 1"
    assert db.execute(journal).fetchall() == [(saved["chain"]["seq"],)]
    assert db.execute("SELECT max(seq) FROM outbox").fetchone()[0] >= saved["journal_seq"]
    db.close()


async def test_lost_state_file_finds_the_head_in_the_journal(tmp_path: Path) -> None:
    # The outbox was emptied (all published) and patrol.json is gone: the head's journal copy
    # still links the next check-in to it, instead of a second `prev:null` mid-sequence.
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        [first] = await checkin_payloads(outbox)
        rows = await outbox.fetch((-1, -1), 1000)
        await outbox.delete([r.rowid for r in rows])  # as the publisher does after PUBACK
    (state / "patrol.json").unlink()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[1], 1)
        [second] = [e for e in await outbox_events(outbox, "checkin")]
        assert second["body"]["prev"] == sha(first)


async def present(sim: Pn532Simulator, uid: str) -> None:
    """Hold a tag on the reader for a few polls, then take it away."""
    sim.present(uid)
    await sim.wait_commands(0x4A, sim.commands.count(0x4A) + 4)
    sim.remove()
    await sim.wait_commands(0x4A, sim.commands.count(0x4A) + 3)


async def test_checkin_acknowledged_before_a_crash_keeps_chain_and_progress(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork window: published, PUBACKed and deleted from the outbox, then a crash before
    patrol.json is written. The journal still has it: no fork, no second check-in."""
    state = tmp_path / "state"
    DocState(state).set_tasks(TASKS)
    central = Watcher(broker.host, broker.port)
    try:
        async with Pn532Simulator() as sim:
            cfg = make_config(state, broker.port, nfc={"port": sim.port, "poll_interval_s": 0.02})
            clock = SystemClock(synced=lambda: True)
            async with Agent(cfg, clock=clock) as app:
                driver = await patrol_of(app, tmp_path)
                await wait_until(lambda: app.link.ready, what="connected")
                await tap(sim, driver, TAGS[0], 1)
                monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
                await tap(sim, driver, TAGS[1], 2)
                await wait_until(lambda: app.outbox.depth == 0, what="acknowledged, deleted")
                await wait_until(lambda: len(central.events("/evt/checkin")) >= 2)
                assert await checkin_payloads(app.outbox) == []
            # Shut down without patrol.json: it still says cp0 was the last check-in.
            saved = json.loads((state / "patrol.json").read_text())
            monkeypatch.undo()
            acked = [p for t, p, _ in central.messages if t.endswith("/evt/checkin")]
            assert saved["chain"]["head"] == sha(acked[0])
            async with Agent(cfg, clock=clock) as app:
                driver = await patrol_of(app, tmp_path)
                assert driver.status()["patrol"]["chain"]["head"] == sha(acked[1])
                await present(sim, TAGS[1])  # checked in before the crash: not again
                await driver.drain()
                assert driver.reporter.counts.checkins == 0
                await tap(sim, driver, TAGS[2], 1)
                await wait_until(lambda: app.outbox.depth == 0, what="sent")
                await wait_until(lambda: len(central.events("/evt/checkin")) >= 3)
        messages = list(central.messages)
    finally:
        central.close()
    by_id = {json.loads(p)["id"]: p for t, p, _ in messages if t.endswith("/evt/checkin")}
    chain = sorted(by_id.values(), key=lambda p: json.loads(p)["seq"])
    bodies = [json.loads(p)["body"] for p in chain]
    assert [b["checkpoint_id"] for b in bodies] == ["cp0", "cp1", "cp2"]
    assert bodies[0]["prev"] is None
    assert bodies[1]["prev"] == sha(chain[0]) and bodies[2]["prev"] == sha(chain[1])


async def test_new_task_set_keeps_checkins_and_adds_checkpoints(tmp_path: Path) -> None:
    async with rig(tmp_path / "state", TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        # ver 2: cp0 kept, cp1 and cp2 dropped, a new cp9; the check-in at cp0 stays.
        cps = [cp("cp0", at(0, 0), tags=(TAGS[0],)), cp("cp9", at(900, 0), tags=("04000009",))]
        await driver.apply_tasks(record([task("t-round", cps)], ver=2))
        await driver.drain()
        view = driver.tasks_view()
        assert view["ver"] == 2
        assert [(c["id"], c["state"]) for c in view["tasks"][0]["checkpoints"]] == [
            ("cp0", "checked"),
            ("cp9", "open"),
        ]
        await scan(fed, driver, "04000009", 2)
        patrol = [e["body"]["event"] for e in await outbox_events(outbox, "patrol")]
    assert patrol == ["started", "completed"]


async def test_lost_state_file_is_rebuilt_from_the_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
    (state / "patrol.json").unlink()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        first = await checkin_payloads(outbox)
        assert driver.status()["patrol"]["chain"]["head"] == sha(first[0])
        await scan(fed, driver, TAGS[0], 1)  # still known as checked in: no second event
        await scan(fed, driver, TAGS[1], 2)
        payloads = await checkin_payloads(outbox)
    assert len(payloads) == 2 and json.loads(payloads[1])["body"]["prev"] == sha(payloads[0])


async def test_outbox_lost_with_patrol_json_kept_starts_a_new_chain(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        await scan(fed, driver, TAGS[1], 2)
    for lost in [*state.glob("outbox.db*"), state / "seq.json"]:
        lost.unlink()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        # seq starts again at 1 (state_reset), so does the chain; progress is kept.
        assert driver.status()["patrol"]["chain"] == {"head": None, "seq": None}
        await scan(fed, driver, TAGS[0], 1)
        assert await checkin_payloads(outbox) == []
        await scan(fed, driver, TAGS[2], 2)
        payloads = await checkin_payloads(outbox)
        notices = await outbox_events(outbox, "notice")
    assert notices[0]["body"] == {"type": "state_reset"} and notices[0]["seq"] == 1
    assert [json.loads(p)["body"]["prev"] for p in payloads] == [None]


async def test_state_file_from_before_the_journal_is_repaired_from_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
        await scan(fed, driver, TAGS[1], 2)
    monkeypatch.undo()
    # As an agent without the journal left it: no journal rows, no journal_seq in the file.
    doc = json.loads((state / "patrol.json").read_text())
    del doc["journal_seq"], doc["unsent"]
    (state / "patrol.json").write_text(json.dumps(doc))
    with sqlite3.connect(state / "outbox.db") as db:
        db.execute("DELETE FROM outbox WHERE acked = 1")
        db.execute("UPDATE outbox SET jrnl = 0")
    db.close()
    async with rig(state, TASKS) as (driver, outbox, _media, fed):
        committed = await checkin_payloads(outbox)
        assert driver.status()["patrol"]["chain"]["head"] == sha(committed[-1])
        await scan(fed, driver, TAGS[1], 1)  # already checked in: no duplicate
        assert len(await checkin_payloads(outbox)) == 2


async def test_progress_stored_before_a_crash_is_not_raised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task completes (check-in, started, completed stored) and patrol.json is not written:
    after the restart the journal's progress events are re-applied, so `completed` and
    `started` are not raised a second time."""
    state = tmp_path / "state"
    one = record([task("t-one", [cp("only", at(0, 0), tags=(TAGS[0],))])])
    async with rig(state, one) as (driver, outbox, _media, fed):
        monkeypatch.setattr(agent.patrol.persistence, "write_json", no_disk)
        await scan(fed, driver, TAGS[0], 1)
        events = [e["body"]["event"] for e in await outbox_events(outbox, "patrol")]
        assert events == ["started", "completed"]
    monkeypatch.undo()
    async with rig(state, one) as (driver, outbox, _media, fed):
        await driver.drain()
        await fed.tag(TAGS[0])  # already checked in: "ok", nothing stored
        await wait_until(lambda: fed.feedback == ["ok"], what="scan after restart")
        await driver.drain()
        events = [e["body"]["event"] for e in await outbox_events(outbox, "patrol")]
        assert events == ["started", "completed"]
        assert len(await outbox_events(outbox, "checkin")) == 1
        assert driver.status()["patrol"]["tasks"][0]["ended"] == "completed"
