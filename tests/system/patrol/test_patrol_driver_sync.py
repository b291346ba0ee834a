"""Everything offline, then synced: the full Agent with the patrol
driver, a PN532 simulator and a file camera; a real Mosquitto that is down at first."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.documents.state import DocState
from agent.runtime.agent import Agent
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.patrol import at, cp, http, jpeg_folder, patrol_of, record, sha, tap, task

TAGS = ["04000001", "04000002", "04000003"]
TASKS = record(
    [
        task(
            "t-night",
            [cp(f"cp{i}", at(150 * i, 0), tags=(t,), photo=(i == 1)) for i, t in enumerate(TAGS)],
        )
    ],
    ver=7,
)


Messages = list[tuple[str, bytes, bool]]


def check_chain(messages: Messages) -> list[tuple[dict[str, Any], bytes]]:
    """Check the check-ins central got: cp0..cp2 by NFC, the first two history, a hash chain it
    can verify from the bytes received; return them (envelope, bytes) in seq order, one per id."""
    checkins = sorted(
        ((json.loads(p), p) for t, p, _ in messages if t.endswith("/evt/checkin")),
        key=lambda e: e[0]["seq"],
    )
    by_id: dict[str, tuple[dict[str, Any], bytes]] = {e["id"]: (e, p) for e, p in checkins}
    ordered = list(by_id.values())
    assert [e["body"]["checkpoint_id"] for e, _ in ordered] == ["cp0", "cp1", "cp2"]
    assert [e["hist"] for e, _ in ordered] == [True, True, False]
    assert all(e["body"]["method"] == "nfc" for e, _ in ordered)
    # The chain central can verify from the bytes it received.
    assert ordered[0][0]["body"]["prev"] is None
    for (_, before), (after, _) in itertools.pairwise(ordered):
        assert after["body"]["prev"] == sha(before)
    return ordered


def check_photo(messages: Messages, checkin: dict[str, Any]) -> None:
    """Check that every chunk of the check-in's photo arrived and reassembles to the named bytes,
    and that its media event names the check-in."""
    ref = checkin["body"]["photos"][0]
    media = [json.loads(p) for t, p, _ in messages if t.endswith("/evt/media")]
    meta = next(m["body"] for m in media if m["body"]["media_id"] == ref["media_id"])
    assert meta["ref"] == {"kind": "checkin", "id": checkin["id"]}
    chunks: dict[int, bytes] = {}
    prefix = f"grid/v1/{DEV}/media/{ref['media_id']}/"
    for t, p, _ in messages:
        if t.startswith(prefix):
            chunks[int(t[len(prefix) :])] = p
    assert sorted(chunks) == list(range(meta["chunks"]))
    data = b"".join(chunks[n] for n in range(meta["chunks"]))
    assert sha(data) == ref["sha256"] == meta["sha256"] and len(data) == ref["bytes"]


def patrol_events(w: Watcher) -> list[str]:
    """The patrol events (`started`, `completed`, ...) the watcher received, in order."""
    return [e["body"]["event"] for e in w.events("/evt/patrol")]


def photos_whole(w: Watcher) -> bool:
    """Whether every photo named by a check-in the watcher received has all its chunks."""
    refs = [ph for e in w.events("/evt/checkin") for ph in e["body"]["photos"]]
    return bool(refs) and all(w.media_whole(DEV, r["media_id"], r["sha256"]) for r in refs)


async def test_offline_checkins_with_photo_reach_central_intact(
    own_broker: Broker, tmp_path: Path
) -> None:
    broker = own_broker  # this test stops and restarts its broker
    state = tmp_path / "state"
    pics = jpeg_folder(tmp_path / "pics")
    broker.stop()
    # The tasks document was applied on an earlier run; it works without any connection.
    DocState(state).set_tasks(TASKS)
    async with Pn532Simulator() as sim:
        cfg = make_config(
            state,
            broker.port,
            nfc={"port": sim.port, "poll_interval_s": 0.02},
            camera={"source": f"file:{pics}", "jpeg_quality": 95},
            patrol={"reap_interval_s": 0.2, "tick_s": 0.1},
        )
        clock = SystemClock(synced=lambda: True)
        async with Agent(cfg, clock=clock) as agent:
            driver = await patrol_of(agent, pics)
            assert agent.link.session is None
            await tap(sim, driver, TAGS[0], 1)
            await tap(sim, driver, TAGS[1], 2)  # photo: true
            offline = driver.status()["patrol"]["chain"]
            photo = next((state / "media").glob("*.jpg"))
        # Restart, broker back: the backlog goes out; one more check-in live.
        broker.start()
        central = Watcher(broker.host, broker.port)
        try:
            async with Agent(cfg, clock=clock) as agent:
                driver = await patrol_of(agent, pics)
                assert driver.status()["patrol"]["chain"] == offline
                await wait_until(lambda: agent.link.ready, what="connected")
                await tap(sim, driver, TAGS[2], 1)
                await wait_until(lambda: agent.outbox.depth == 0, what="outbox drained")
                await wait_until(lambda: not photo.exists(), what="photo reaped after acks")
                await wait_until(lambda: len(central.events("/evt/checkin")) >= 3)
                await wait_until(lambda: len(central.events("/evt/media")) >= 1)
            # Acknowledged by the broker is not yet delivered to this watcher: wait for the last
            # of what is checked below (the patrol's end, the photo's chunks).
            await wait_until(lambda: {"started", "completed"} <= set(patrol_events(central)))
            await wait_until(lambda: photos_whole(central), what="the photo's chunks")
            messages = list(central.messages)
        finally:
            central.close()

    ordered = check_chain(messages)
    check_photo(messages, ordered[1][0])
    patrol = [json.loads(p)["body"]["event"] for t, p, _ in messages if t.endswith("/evt/patrol")]
    assert sorted(set(patrol)) == ["completed", "started"]


async def test_tasks_document_from_central_reaches_the_driver_and_the_api(
    broker: Broker, tmp_path: Path
) -> None:
    from tests.kits.agents import OpsKey

    key = OpsKey("ops-2026a")
    state = tmp_path / "state"
    cfg = make_config(state, broker.port, key, patrol={"tick_s": 0.1})
    central = Watcher(broker.host, broker.port)
    try:
        async with Agent(cfg) as agent:
            driver = await patrol_of(agent, jpeg_folder(tmp_path / "pics"))
            await wait_until(lambda: agent.link.ready, what="connected")
            central.publish(f"grid/v1/{DEV}/desired/tasks", key.doc("tasks", TASKS["body"], ver=9))
            await wait_until(lambda: driver.tasks_view()["ver"] == 9, what="tasks applied")
            status, _, body = await http(state / "api.sock", "GET", "/tasks")
            assert status == 200 and [t["id"] for t in body["tasks"]] == ["t-night"]
            status, _, body = await http(state / "api.sock", "GET", "/status")
            assert body["patrol"]["tasks_ver"] == 9
            await wait_until(lambda: bool(central.events("/ack")), what="ack")
        assert central.events("/ack")[0]["body"]["status"] == "applied"
    finally:
        central.close()
    # The next start has the document without any connection.
    assert DocState(state).tasks is not None
    assert json.loads((state / "patrol.json").read_text())["tasks"]["ver"] == 9
