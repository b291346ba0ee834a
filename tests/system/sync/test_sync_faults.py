"""Broker outages, agent restarts and a frozen broker, all against a real Mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher


@pytest.fixture
def broker(any_broker: Broker) -> Broker:
    """Every test here runs against each broker kind (tests/kits/brokers.py)."""
    return any_broker


def seqs(watcher: Watcher) -> list[int]:
    return sorted({e["seq"] for e in watcher.events()})


async def test_broker_outage_loses_nothing_and_marks_hist(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "state", broker)
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        live = [await agent.outbox.append("checkin", {"n": i}) for i in range(10)]
        await wait_until(lambda: agent.outbox.depth == 0, what="live drained")
        broker.stop()
        await wait_until(lambda: agent.link.session is None, what="link noticed outage")
        backlog = [await agent.outbox.append("incident", {"n": i}) for i in range(50)]
        backlog += [await agent.outbox.append("detection", {"n": i}) for i in range(20)]
        await asyncio.sleep(0.5)  # stay down across a few reconnect attempts
        broker.start()
        watcher = Watcher.of(broker)
        await wait_until(lambda: agent.outbox.depth == 0, what="backlog drained")
        await wait_until(lambda: len(watcher.events()) >= len(backlog))
    got = {e["id"]: e for e in watcher.events()}
    for s in backlog:
        assert got[s.id]["hist"] is True
    assert all(b'"hist":false' in s.payload for s in live)
    # Nothing lost: every seq from 1 to the last one given out reached central, once or more.
    watcher_all = seqs(watcher)
    assert watcher_all[-1] == backlog[-1].seq
    assert set(range(backlog[0].seq, backlog[-1].seq + 1)) <= set(watcher_all)
    watcher.close()


async def test_agent_restart_mid_backlog_keeps_seq(broker: Broker, tmp_path: Path) -> None:
    state = tmp_path / "state"
    broker.stop()
    cfg = make_config(state, broker)
    async with Agent(cfg) as agent:
        first = [await agent.outbox.append("incident", {"n": i}) for i in range(100)]
    broker.start()
    watcher = Watcher.of(broker)
    async with Agent(cfg) as agent:
        # The restarted agent continues the seq and keeps the old backlog.
        more = await agent.outbox.append("incident", {"n": "after"})
        assert more.seq == first[-1].seq + 1
        await wait_until(lambda: agent.outbox.depth == 0, what="drained after restart")
        # Every seq, the state_reset notice (seq 1, sent after the incidents by priority) too:
        # PUBACKed by the broker is not yet delivered to this watcher.
        every = set(range(1, more.seq + 1))
        await wait_until(lambda: every <= set(seqs(watcher)), what="every seq at the watcher")
    got = {e["id"]: e for e in watcher.events()}
    assert all(got[s.id]["hist"] is True for s in first)
    assert got[more.id]["seq"] == more.seq
    assert set(range(1, more.seq + 1)) == set(seqs(watcher))
    # Exactly the stored bytes went out.
    incident = {p for _, p, _ in watcher.messages}
    assert all(s.payload in incident for s in first)
    watcher.close()


async def test_frozen_broker_without_pubacks_is_reconnected(broker: Broker, tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "state", broker, sync={"puback_timeout_s": 1.0})
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        connects = agent.link.connects
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGSTOP)  # TCP stays up, nothing is acknowledged
        try:
            stored = [await agent.outbox.append("alarm", {"type": "sos"}) for _ in range(3)]
            await wait_until(lambda: agent.link.session is None, what="dead link dropped")
        finally:
            os.kill(broker.proc.pid, signal.SIGCONT)
        watcher = Watcher.of(broker)
        await wait_until(lambda: agent.link.connects > connects, what="reconnected")
        await wait_until(lambda: agent.outbox.depth == 0, what="delivered after reconnect")
        await wait_until(lambda: {s.id for s in stored} <= {e["id"] for e in watcher.events()})
    watcher.close()


async def test_mqtt311_delivery(broker: Broker, tmp_path: Path) -> None:
    watcher = Watcher.of(broker)
    cfg = make_config(tmp_path / "state", broker, broker={"protocol": 3})
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        s = await agent.outbox.append("checkin", {"n": 1})
        await wait_until(lambda: s.id in {e["id"] for e in watcher.events()})
    watcher.close()
