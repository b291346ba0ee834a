"""Online delivery against a real Mosquitto: envelopes, birth, reported, status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher


@pytest.fixture
def broker(any_broker: Broker) -> Broker:
    """Every test here runs against each broker kind (tests/kits/brokers.py)."""
    return any_broker


async def test_events_reach_broker_with_contract_envelope(broker: Broker, tmp_path: Path) -> None:
    watcher = Watcher.of(broker)
    cfg = make_config(tmp_path / "state", broker)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        stored = [await agent.outbox.append("incident", {"n": i}) for i in range(20)]
        await wait_until(lambda: len(watcher.events("/evt/incident")) == 20)
        await wait_until(lambda: agent.outbox.depth == 0)
    topic = f"grid/v1/{DEV}/state"

    def offline() -> bool:
        return any(json.loads(p)["online"] is False for p in watcher.on(topic))

    # The broker PUBACKs the graceful offline before the agent returns; delivering it to this
    # watcher's own connection comes after that (a loaded run read the states in between).
    await wait_until(offline, what="the graceful offline state")
    evts = watcher.events("/evt/incident")
    assert [e["id"] for e in evts] == [s.id for s in stored]
    first = evts[0]
    assert set(first) == {
        "v",
        "kind",
        "id",
        "dev",
        "seq",
        "boot",
        "mono_ms",
        "ts",
        "ts_src",
        "time_ok",
        "hist",
        "body",
    }
    assert first["dev"] == DEV and first["kind"] == "incident" and first["hist"] is False
    # Bytes on the wire are the stored bytes.
    wire = watcher.on(f"grid/v1/{DEV}/evt/incident")
    assert wire == [s.payload for s in stored]
    # seq 1 is the state_reset notice of a new state dir.
    notices = watcher.events("/evt/notice")
    assert notices[0]["seq"] == 1 and notices[0]["body"] == {"type": "state_reset"}
    assert [e["seq"] for e in evts] == list(range(2, 22))
    states = [json.loads(p) for p in watcher.on(topic)]
    assert states[0]["online"] is True and states[0]["role"] == "patrol"
    assert states[0]["mode"] == "normal" and states[0]["tasks_ver"] is None
    assert states[-1] == {
        "v": 1,
        "online": False,
        "bdseq": states[0]["bdseq"],
        "reason": "shutdown",
        "role": "patrol",  # §5 (2026-12-07b): an offline fleet is addressable by role and zone
        "zones": ["ruyihu", "ruyihu.cbd"],
    }
    reported = json.loads(watcher.on(f"grid/v1/{DEV}/reported")[0])
    assert reported["mode"] == {"name": "normal", "ver": None, "scope": "default"}
    watcher.close()


async def test_presence_birth_will_on_a_lost_link_and_rebirth(
    broker: Broker, tmp_path: Path
) -> None:
    w = Watcher.of(broker)
    topic = f"grid/v1/{DEV}/state"

    def states() -> list[dict[str, object]]:
        return [json.loads(p) for p in w.on(topic)]

    cfg = make_config(tmp_path / "state", broker)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        await wait_until(lambda: len(states()) == 1, what="birth")
        first = states()[0]
        session = agent.link.session
        assert session is not None
        session.abort("test: the link is lost")  # the socket closes without DISCONNECT
        await wait_until(lambda: agent.link.connects == 2, what="reconnected")
        await wait_until(lambda: len(states()) >= 3, what="will and a new birth")
    assert first["online"] is True
    lost = [s for s in states() if s["online"] is False and s["reason"] == "lost"]
    assert [s["bdseq"] for s in lost] == [first["bdseq"]]
    # Reported: the will named no role or zones, so `--role`/`--zone` skipped offline devices.
    assert [(s["role"], s["zones"]) for s in lost] == [("patrol", ["ruyihu", "ruyihu.cbd"])]
    births = [s for s in states() if s["online"] is True]
    assert len(births) == 2 and int(str(births[1]["bdseq"])) > int(str(first["bdseq"]))
    w.close()
    # What central finds retained afterwards: the graceful stop of the last session.
    late = Watcher.of(broker, topic)
    assert late.wait_for(lambda m: bool(m), timeout=10)
    assert json.loads(late.messages[0][1]) == {
        "v": 1,
        "online": False,
        "bdseq": births[1]["bdseq"],
        "reason": "shutdown",
        "role": "patrol",
        "zones": ["ruyihu", "ruyihu.cbd"],
    }
    late.close()
