"""A district's broker: a real 3-node RabbitMQ 3.10 cluster (MQTT 3.1.1 only, no shared
subscriptions, durable sessions as quorum queues). A patrol agent configured for MQTT 5 with
all three nodes in `broker.hosts` falls back to 3.1.1 by itself; the archive consumes with a
plain persistent subscription; kill -9 of the node both are connected to: the device goes on
through another node and the archive holds every event (docs/central.md)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.archive import ArchiverProc
from tests.kits.rabbitmq import RabbitCluster

# The nodes boot one after another (tests/kits/rabbitmq.py says why), ~20-25 s here even with
# a core held by a busy loop; 120 s per node is the start bound, the per-test bound is above
# three of them (setup counts).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    c = RabbitCluster()
    try:
        c.start(timeout=120.0)
        yield c
    finally:
        c.stop()


def _events(db: Path) -> set[str]:
    try:
        with sqlite3.connect(db) as c:
            return {r[0] for r in c.execute("SELECT id FROM events WHERE kind = 'incident'")}
    except sqlite3.Error:
        return set()


async def test_device_and_archive_survive_kill_9_of_their_node(
    cluster: RabbitCluster, tmp_path: Path
) -> None:
    hosts = [f"127.0.0.1:{n.mqtt_port}" for n in cluster.nodes]
    ops = tmp_path / "ops.toml"
    ops.write_text(f"[broker]\nprotocol = 3\nhosts = {hosts!r}\n".replace("'", '"'))
    db = tmp_path / "archive.db"
    archiver = ArchiverProc(
        ["--ops-config", str(ops), "--no-share", "--name", "district",
         "--db", str(db), "--media-dir", str(tmp_path / "media")],
        tmp_path / "archiver.log",
    )  # fmt: skip
    cfg = make_config(tmp_path / "state", cluster.nodes[0].mqtt_port, broker={"hosts": hosts})
    assert cfg.broker.protocol == 5  # the device is set up for MQTT 5 and falls back
    try:
        archiver.start()
        archiver.wait_ready(60)
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready, timeout=60)
            assert agent.link.failover.protocol_now == 3
            first = agent.link.failover.current
            node = next(n for n in cluster.nodes if n.mqtt_port == first[1])
            ids = [(await agent.outbox.append("incident", {"n": i})).id for i in range(20)]
            await wait_until(lambda: agent.outbox.depth == 0, timeout=30)
            cluster.kill(node)  # kill -9 the node the device (and the archiver) is on
            ids += [(await agent.outbox.append("incident", {"n": i})).id for i in range(20, 60)]
            await wait_until(lambda: agent.link.failover.current != first, timeout=60)
            await wait_until(lambda: agent.link.ready, timeout=60)
            await wait_until(lambda: agent.outbox.depth == 0, timeout=60)
            await wait_until(lambda: _events(db) >= set(ids), timeout=60)
    finally:
        assert archiver.stop() == 0, archiver.log()
    got = _events(db)
    assert got == set(ids)  # 0 lost, and each once (primary key)
