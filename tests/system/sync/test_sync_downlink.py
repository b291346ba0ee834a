"""Downlink documents through a real broker: every §6 rejection, applying, acks, reported."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from sync.verify import b64url_decode, b64url_encode
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher


@pytest.fixture
def broker(any_broker: Broker) -> Broker:
    """Every test here runs against each broker kind (tests/kits/brokers.py)."""
    return any_broker


TASKS = {
    "tasks": [
        {
            "id": "t-1",
            "name": "Lake loop",
            "staff_id": "s-1023",
            "start_ms": 1_700_000_000_000,
            "end_ms": 4_000_000_000_000,
            "order": "any",
            "checkpoints": [
                {
                    "id": "cp-1",
                    "name": "Pier",
                    "lat": 34.78,
                    "lon": 113.73,
                    "radius_m": 25,
                    "dwell_s": 10,
                    "tags": ["04A1B2C3"],
                    "photo": False,
                }
            ],
        }
    ]
}
TASKS_TOPIC = f"grid/v1/{DEV}/desired/tasks"
MODE_TOPIC = f"grid/v1/{DEV}/desired/mode"


def acks(w: Watcher) -> list[dict[str, Any]]:
    return [e["body"] for e in w.events("/ack")]


def tamper(doc: bytes) -> bytes:
    env = json.loads(doc)
    payload = json.loads(b64url_decode(env["payload"]))
    payload["body"]["tasks"][0]["name"] = "changed"
    env["payload"] = b64url_encode(json.dumps(payload).encode())
    return json.dumps(env).encode()


@pytest.fixture
def key() -> OpsKey:
    return OpsKey("ops-2026a")


async def send_and_ack(
    agent: Agent, w: Watcher, topic: str, payload: bytes, retain: bool = False
) -> dict[str, Any]:
    before = len(acks(w))
    w.publish(topic, payload, retain=retain)
    await wait_until(lambda: len(acks(w)) > before, what=f"ack for {topic}")
    return acks(w)[-1]


async def test_every_rejection_is_acked_and_changes_nothing(
    broker: Broker, tmp_path: Path, key: OpsKey
) -> None:
    w = Watcher.of(broker)
    cfg = make_config(tmp_path / "state", broker, key)
    stranger = OpsKey("ops-2026a")  # same kid, different key: a forgery
    unknown = OpsKey("ops-rogue")
    now = int(time.time() * 1000)
    async with Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent:
        await wait_until(lambda: agent.link.ready)
        good = key.doc("tasks", TASKS, ver=5)
        # Retained, as central sends it: the session can be up a moment before its SUBSCRIBE is
        # (seen with amqtt under load), and a live-only message would then reach nobody.
        ack = await send_and_ack(agent, w, TASKS_TOPIC, good, retain=True)
        assert ack["status"] == "applied" and ack["ver"] == 5 and ack["reason"] is None
        # The ack is stored before the version is (sync/downlink.py): the version follows.
        await wait_until(lambda: agent.tasks_ver == 5, what="tasks ver 5 recorded")
        snapshot = (tmp_path / "state" / "tasks.json").read_bytes()

        cases: list[tuple[str, bytes, str, str | None]] = [
            (TASKS_TOPIC, stranger.doc("tasks", TASKS, ver=6), "rejected", "bad_signature"),
            (TASKS_TOPIC, tamper(key.doc("tasks", TASKS, ver=7)), "rejected", "bad_signature"),
            (TASKS_TOPIC, unknown.doc("tasks", TASKS, ver=8), "rejected", "unknown_key"),
            (TASKS_TOPIC, key.doc("tasks", TASKS, ver=4), "rejected", "rollback"),
            (TASKS_TOPIC, good, "duplicate", None),
            (TASKS_TOPIC, key.doc("tasks", TASKS, ver=9, exp=now - 1000), "rejected", "expired"),
            (TASKS_TOPIC, b"x" * 262145, "rejected", "too_large"),
            (TASKS_TOPIC, b'{"v":1}', "rejected", "bad_envelope"),
            (TASKS_TOPIC, b"\xff\xfe not json", "rejected", "bad_envelope"),
            (TASKS_TOPIC, key.doc("mode", {"mode": "holiday"}, ver=10), "rejected", "wrong_topic"),
            (
                TASKS_TOPIC,
                key.doc("tasks", TASKS, ver=11, target={"dev": "pd-9999"}),
                "rejected",
                "wrong_target",
            ),
            (TASKS_TOPIC, key.doc("tasks", {"tasks": "no"}, ver=12), "rejected", "invalid_body"),
        ]
        # A broker with a smaller Maximum Packet Size refuses central's oversized publish itself.
        limit = getattr(broker, "max_packet", None)
        cases = [c for c in cases if limit is None or len(c[1]) < limit - 100]
        for topic, payload, status, reason in cases:
            ack = await send_and_ack(agent, w, topic, payload)
            assert (ack["status"], ack["reason"]) == (status, reason), payload[:80]
            assert ack["typ"] == "tasks"
            assert agent.tasks_ver == 5
            assert (tmp_path / "state" / "tasks.json").read_bytes() == snapshot
        for too_large in [a for a in acks(w) if a["reason"] == "too_large"]:
            assert too_large["ref"] is None and too_large["ver"] is None
        forged = [a for a in acks(w) if a["reason"] == "unknown_key"][0]
        assert forged["ver"] == 8 and forged["ref"] is not None
    w.close()


async def test_tasks_survive_restart_and_reported_follows(
    broker: Broker, tmp_path: Path, key: OpsKey
) -> None:
    w = Watcher.of(broker)
    cfg = make_config(tmp_path / "state", broker, key)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        await send_and_ack(agent, w, TASKS_TOPIC, key.doc("tasks", TASKS, ver=3), retain=True)
        await wait_until(
            lambda: any(json.loads(p)["tasks_ver"] == 3 for p in w.on(f"grid/v1/{DEV}/reported"))
        )
    async with Agent(cfg) as agent:
        assert agent.tasks_ver == 3
        assert agent.state.tasks is not None and agent.state.tasks["body"] == TASKS
        await wait_until(lambda: agent.link.ready)
        births = [json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")]
        await wait_until(
            lambda: (
                any(b.get("tasks_ver") == 3 for b in births)
                or bool(
                    births.extend(
                        json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")[len(births) :]
                    )
                )
            )
        )
    # The retained document comes back on the new subscription but is not acked twice.
    assert [a["status"] for a in acks(w)] == ["applied"]
    w.close()


async def test_zone_emergency_overrides_device_holiday_and_expires(
    broker: Broker, tmp_path: Path, key: OpsKey
) -> None:
    w = Watcher.of(broker)
    cfg = make_config(tmp_path / "state", broker, key)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        await send_and_ack(agent, w, MODE_TOPIC, key.doc("mode", {"mode": "holiday"}, ver=1))
        assert agent.modes.current.name == "holiday" and agent.modes.current.scope == "dev"
        exp = int(time.time() * 1000) + 4000
        agent.clock = SystemClock(synced=lambda: True)
        zone_doc = key.doc(
            "mode",
            {"mode": "emergency", "reason": "flood"},
            ver=1,
            target={"zone": "ruyihu"},
            exp=exp,
        )
        ack = await send_and_ack(agent, w, "grid/v1/zone/ruyihu/desired/mode", zone_doc)
        assert ack["status"] == "applied"
        assert agent.modes.current.reported() == {
            "name": "emergency",
            "ver": 1,
            "scope": "zone:ruyihu",
        }
        # A zone the device does not follow is the wrong target.
        other = key.doc("mode", {"mode": "emergency"}, ver=1, target={"zone": "elsewhere"})
        ack = await send_and_ack(agent, w, MODE_TOPIC, other)
        assert ack["reason"] == "wrong_target"
        await wait_until(lambda: agent.modes.current.name == "holiday", what="emergency expired")

        def reported() -> list[str]:
            return [json.loads(p)["mode"]["name"] for p in w.on(f"grid/v1/{DEV}/reported")]

        # Each switch is published after it happens: wait for the last one to arrive.
        await wait_until(lambda: reported().count("emergency") == 1 and reported()[-1] == "holiday")
        assert reported()[-3:] == ["holiday", "emergency", "holiday"]
    w.close()


async def test_cmd_rebirth_and_status_now(broker: Broker, tmp_path: Path, key: OpsKey) -> None:
    w = Watcher.of(broker)
    cfg = make_config(
        tmp_path / "state",
        broker,
        key,
        modes={"profiles": {"normal": {"status_interval_s": 3600}}},
    )
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        await wait_until(lambda: len(w.on(f"grid/v1/{DEV}/state")) >= 1)
        births = len(w.on(f"grid/v1/{DEV}/state"))
        ver = int(time.time() * 1000)
        ack = await send_and_ack(
            agent,
            w,
            f"grid/v1/{DEV}/cmd",
            key.doc("cmd", {"action": "rebirth", "args": {}}, ver=ver),
        )
        assert ack["status"] == "applied"
        await wait_until(lambda: len(w.on(f"grid/v1/{DEV}/state")) == births + 1)
        states = [json.loads(p) for p in w.on(f"grid/v1/{DEV}/state")]
        assert states[-1]["bdseq"] == states[-2]["bdseq"]  # same session, same bdseq
        assert not w.on(f"grid/v1/{DEV}/status")
        await send_and_ack(
            agent, w, f"grid/v1/{DEV}/cmd", key.doc("cmd", {"action": "status_now"}, ver=ver + 1)
        )
        await wait_until(lambda: len(w.on(f"grid/v1/{DEV}/status")) == 1)
        status = json.loads(w.on(f"grid/v1/{DEV}/status")[0])
        assert status["mode"] == "normal" and set(status["outbox"]) == {
            "depth",
            "bytes",
            "oldest_ms",
            "media_refused",
        }
        # A replayed command (same ver) is a duplicate and is not executed again.
        ack = await send_and_ack(
            agent, w, f"grid/v1/{DEV}/cmd", key.doc("cmd", {"action": "status_now"}, ver=ver + 1)
        )
        assert ack["status"] == "duplicate"
    w.close()


async def test_expiry_uses_last_good_time_while_clock_unsynced(
    broker: Broker, tmp_path: Path, key: OpsKey
) -> None:
    w = Watcher.of(broker)
    state = tmp_path / "state"
    cfg = make_config(state, broker, key)
    now = int(time.time() * 1000)
    async with Agent(cfg, clock=SystemClock(synced=lambda: False, has_rtc=False)) as agent:
        agent.state.note_good_time(now)  # an earlier moment when the time was known right
        await wait_until(lambda: agent.link.ready)
        ack = await send_and_ack(
            agent, w, TASKS_TOPIC, key.doc("tasks", TASKS, ver=1, exp=now - 60_000)
        )
        assert ack["reason"] == "expired"
        ack = await send_and_ack(
            agent, w, TASKS_TOPIC, key.doc("tasks", TASKS, ver=2, exp=now + 60_000)
        )
        assert ack["status"] == "applied"
        stamp = [e for e in w.events("/ack")][-1]
        assert stamp["time_ok"] is False and stamp["ts_src"] == "none"
    w.close()
