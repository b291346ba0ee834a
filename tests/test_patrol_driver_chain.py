"""The check-in hash chain and patrol progress across restarts (issue 4 points 1 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import agent.patrol_driver
from tests.asynckit import wait_until
from tests.test_patrol_driver_kit import (
    at,
    checkin_payloads,
    cp,
    outbox_events,
    record,
    rig,
    sha,
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

        monkeypatch.setattr(agent.patrol_driver, "write_json", no_disk)
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


async def test_new_task_set_keeps_checkins_and_adds_checkpoints(tmp_path: Path) -> None:
    async with rig(tmp_path / "state", TASKS) as (driver, outbox, _media, fed):
        await scan(fed, driver, TAGS[0], 1)
        # ver 2: cp0 kept, cp1 and cp2 dropped, a new cp9; the check-in at cp0 stays.
        cps = [cp("cp0", at(0, 0), tags=(TAGS[0],)), cp("cp9", at(900, 0), tags=("04000009",))]
        driver.on_tasks(record([task("t-round", cps)], ver=2))
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
