"""A strict broker's limits (CONNACK properties, ACL refusals) against a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.demo.broker import Broker
from agent.media import MediaStore
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.brokers import run_mosquitto
from tests.kits.mqtt import Watcher


def strict(tmp_path: Path, conf: str) -> Iterator[Broker]:
    yield from run_mosquitto(tmp_path / "strict", conf)


@pytest.fixture
def small_packets(tmp_path: Path) -> Iterator[Broker]:
    """The broker of the field report: Maximum Packet Size 32 KiB, below the 64 KiB chunk."""
    yield from strict(tmp_path, "max_packet_size 32768\n")


async def photo_incident(agent: Agent, data: bytes) -> dict[str, Any]:
    media = MediaStore(agent.cfg.device.state_dir, DEV, agent.outbox, quota_bytes=10_000_000)
    ref = await media.store(data)
    naming = await agent.outbox.append(
        "incident", {"category": "other", "level": 3, "note": "x", "photos": [ref]}
    )
    await media.send(ref, naming)
    return ref


@contextlib.asynccontextmanager
async def online(
    b: Broker, tmp_path: Path, **sections: Any
) -> AsyncIterator[tuple[Agent, Watcher]]:
    """A connected agent on `b`, and central's watcher."""
    w = Watcher(b.host, b.port)
    try:
        async with Agent(make_config(tmp_path / "state", b.port, **sections)) as agent:
            await wait_until(lambda: agent.link.ready)
            yield agent, w
    finally:
        w.close()


def media_events(w: Watcher) -> list[dict[str, Any]]:
    return [e["body"] for e in w.events("/evt/media")]


def notices(w: Watcher, typ: str) -> list[dict[str, Any]]:
    return [e["body"] for e in w.events("/evt/notice") if e["body"]["type"] == typ]


@pytest.mark.slow
async def test_photo_reaches_a_32k_broker_in_smaller_chunks_without_a_storm(
    small_packets: Broker, tmp_path: Path
) -> None:
    b = small_packets
    data = os.urandom(150_000)
    async with online(b, tmp_path) as (agent, w):
        ref = await photo_incident(agent, data)
        after = await agent.outbox.append("incident", {"note": "behind the photo"})
        await wait_until(lambda: media_events(w), what="media event delivered")
        await wait_until(lambda: after.id in {e["id"] for e in w.events()})
        await wait_until(lambda: agent.outbox.depth == 0, what="outbox drained")
        # One connection: no chunk got the device disconnected.
        assert agent.link.connects == 1
        status = await agent.status_body()
    assert status["link"]["broker"]["max_packet"] == 32768
    assert status["link"]["set_aside"] == 0 and status["link"]["problems"] == []
    (event,) = media_events(w)
    mid = ref["media_id"]
    assert event["media_id"] == mid and event["bytes"] == len(data)
    chunks = [w.on(f"grid/v1/{DEV}/media/{mid}/{n}") for n in range(event["chunks"])]
    assert all(len(c) == 1 and len(c[0]) <= 32768 for c in chunks)
    whole = b"".join(c[0] for c in chunks)
    assert hashlib.sha256(whole).hexdigest() == event["sha256"] == ref["sha256"]
    # The media event came after its last chunk (§4).
    topics = [t for t, _, _ in w.messages]
    last_chunk = topics.index(f"grid/v1/{DEV}/media/{mid}/{event['chunks'] - 1}")
    assert topics.index(f"grid/v1/{DEV}/evt/media") > last_chunk


async def test_mqtt311_broker_too_small_for_a_chunk_sets_the_photo_aside(
    small_packets: Broker, tmp_path: Path
) -> None:
    """MQTT 3.1.1 announces no limit: the chunk that gets the link dropped is found and
    set aside with a notice after a bounded number of tries; what follows it flows."""
    b = small_packets
    async with online(b, tmp_path, broker={"protocol": 3}) as (agent, w):
        ref = await photo_incident(agent, os.urandom(100_000))
        after = await agent.outbox.append("incident", {"note": "behind the photo"})
        await wait_until(lambda: notices(w, "message_set_aside"), what="set-aside notice")
        await wait_until(lambda: after.id in {e["id"] for e in w.events()})
        await wait_until(lambda: agent.outbox.depth == 0, what="outbox drained")
        connects = agent.link.connects
        status = await agent.status_body()
    (note,) = notices(w, "message_set_aside")
    assert note["media_id"] == ref["media_id"] and note["reason"] == "link_dropped"
    assert note["kind"] == "media_chunk" and isinstance(note["seq"], int)  # its media event's
    assert status["link"]["set_aside"] == 1
    assert connects <= 6  # bounded: found within the retry bound, then never sent again
    assert not media_events(w)


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker whose ACL refuses this device's detections and alarms (PUBACK 0x87)."""
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic deny grid/v1/{DEV}/evt/detection\n"
        f"topic deny grid/v1/{DEV}/evt/alarm\n"
        "topic readwrite #\n"
    )
    yield from strict(tmp_path, f"acl_file {acl}\n")


@pytest.mark.slow
async def test_refused_messages_are_set_aside_or_kept_stuck_and_the_rest_flows(
    acl_broker: Broker, tmp_path: Path
) -> None:
    b = acl_broker
    async with online(b, tmp_path) as (agent, w):
        detection = await agent.outbox.append("detection", {"n": 1})
        alarm = await agent.outbox.append("alarm", {"type": "sos"})
        after = [await agent.outbox.append("incident", {"n": i}) for i in range(5)]
        await wait_until(lambda: {s.id for s in after} <= {e["id"] for e in w.events()})
        await wait_until(lambda: notices(w, "message_set_aside"), what="set-aside notice")

        await wait_until(lambda: agent.publisher.status()["stuck"] == 1, what="alarm stuck")
        # Everything else was delivered and deleted; the alarm is kept.
        await wait_until(lambda: agent.outbox.depth == 1, what="only the alarm left")
        status = await agent.status_body()
        connects = agent.link.connects
    (note,) = notices(w, "message_set_aside")
    assert note["reason"] == "refused" and note["id"] == detection.id
    assert note["kind"] == "detection" and note["seq"] == detection.seq
    # The priority-0 alarm is never dropped: kept in the outbox, and status says it is stuck.
    assert status["link"]["stuck"] == 1 and status["link"]["set_aside"] == 1
    assert alarm.id not in {e["id"] for e in w.events()}
    assert connects == 1
    # Central is told once why the alarm does not come (the notice itself is stored and sent).
    (stuck_note,) = notices(w, "message_stuck")
    assert (stuck_note["id"], stuck_note["seq"], stuck_note["reason"]) == (
        alarm.id,
        alarm.seq,
        "refused",
    )


def test_limits_json_roundtrip_is_plain() -> None:
    from sync.limits import BrokerLimits

    limits = BrokerLimits.from_connack(5, {"MaximumPacketSize": 32768, "RetainAvailable": 0})
    assert json.loads(json.dumps(limits.describe()))["max_packet"] == 32768
    assert limits.problems() == ("retain_unavailable",)


@pytest.fixture
def no_retain(tmp_path: Path) -> Iterator[Broker]:
    """A broker without retained messages, and with a Server Keep Alive and Receive Maximum."""
    yield from strict(
        tmp_path, "retain_available false\nmax_keepalive 10\nmax_inflight_messages 4\n"
    )


async def test_broker_without_retain_is_named_in_status_and_the_link_stays_up(
    no_retain: Broker, tmp_path: Path
) -> None:
    b = no_retain
    async with online(b, tmp_path, broker={"keepalive_s": 30}) as (agent, w):
        stored = [await agent.outbox.append("incident", {"n": i}) for i in range(30)]
        await wait_until(lambda: {s.id for s in stored} <= {e["id"] for e in w.events()})
        await wait_until(lambda: bool(w.on(f"grid/v1/{DEV}/state")), what="birth, unretained")
        status = await agent.status_body()
        connects = agent.link.connects
    link = status["link"]
    assert "retain_unavailable" in link["problems"]
    assert link["broker"]["keepalive_s"] == 10 and link["broker"]["receive_max"] == 4
    assert connects == 1


@pytest.fixture
def qos0_only(tmp_path: Path) -> Iterator[Broker]:
    yield from strict(tmp_path, "max_qos 0\n")


async def test_broker_without_qos1_keeps_everything_stored_and_says_so(
    qos0_only: Broker, tmp_path: Path
) -> None:
    b = qos0_only
    async with online(b, tmp_path) as (agent, w):
        alarm = await agent.outbox.append("alarm", {"type": "sos"})
        await wait_until(lambda: bool(w.on(f"grid/v1/{DEV}/state")), what="birth at QoS 0")
        status = await agent.status_body()
        connects = agent.link.connects
        depth = agent.outbox.depth
    assert "qos1_unavailable" in status["link"]["problems"]
    assert alarm.id not in {e["id"] for e in w.events()}
    assert depth >= 2  # the state_reset notice and the alarm: kept, not published at QoS 0
    assert connects == 1


async def test_a_backlog_goes_out_a_window_at_a_time_within_receive_maximum(
    no_retain: Broker, tmp_path: Path
) -> None:
    # Receive Maximum 4: the window is 2 however many rows the publisher sends in one turn.
    b = no_retain
    seen: list[int] = []

    async def sample(agent: Agent) -> None:
        while True:
            seen.append(agent.publisher.inflight)
            await asyncio.sleep(0)

    async with online(b, tmp_path, broker={"keepalive_s": 30}) as (agent, w):
        sampler = asyncio.create_task(sample(agent))
        appends = (agent.outbox.append("incident", {"n": i}) for i in range(60))
        stored = await asyncio.gather(*appends)
        await wait_until(lambda: {s.id for s in stored} <= {e["id"] for e in w.events()})
        sampler.cancel()
    seqs = [e["seq"] for e in w.events() if e["id"] in {s.id for s in stored}]
    assert seqs == sorted(seqs)  # in order
    assert max(seen) == 2  # the window was filled, never overfilled
