"""broker.hosts failover and the MQTT 5 -> 3.1.1 fallback: the pure rotation, then real agents
against Mosquitto and amqtt (an MQTT 3.1.1-only broker that turns an MQTT 5 CONNECT away)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.model import BrokerConfig
from agent.demo.broker import Broker, free_port
from agent.runtime.agent import Agent
from sync.failover import Failover, parse_hosts
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.brokers import AmqttBroker, run_mosquitto
from tests.kits.mqtt import Watcher


def test_parse_hosts() -> None:
    assert parse_hosts(("a", "b:1884", "[::1]:1885", "[::1]"), 1883) == (
        ("a", 1883),
        ("b", 1884),
        ("::1", 1885),
        ("::1", 1883),
    )
    for bad in ("a:0", "a:x", ":1883", "[]:1"):
        with pytest.raises(ValueError, match="broker host"):
            parse_hosts((bad,), 1883)
    with pytest.raises(ValueError, match="port must be"):
        BrokerConfig(hosts=("n1:99999",))
    assert BrokerConfig(host="x", port=7).nodes() == (("x", 7),)


def test_rotation_and_fallback_per_node() -> None:
    f = Failover((("n1", 1), ("n2", 2), ("n3", 3)), protocol=5)
    assert f.current == ("n1", 1) and f.protocol_now == 5
    f = f.failed()
    assert f.current == ("n2", 2)
    f = f.failed(refused_v5=True)  # n2 closed the MQTT 5 CONNECT: n2 again, 3.1.1
    assert f.current == ("n2", 2) and f.protocol_now == 3
    f = f.failed(refused_v5=True)  # refused at 3.1.1 too: that is an outage, move on
    assert f.current == ("n3", 3) and f.protocol_now == 5
    f = f.failed().failed()
    assert f.current == ("n2", 2) and f.protocol_now == 3  # n2 is remembered
    assert Failover((("a", 1),), protocol=3).failed(refused_v5=True).protocol_now == 3


@pytest.fixture
def amqtt(tmp_path: Path) -> Iterator[Broker]:
    b = AmqttBroker(tmp_path / "amqtt")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.mark.slow
async def test_agent_falls_back_to_mqtt_311_when_mqtt5_is_turned_away(
    amqtt: Broker, tmp_path: Path
) -> None:
    watcher = Watcher(amqtt.host, amqtt.port, protocol=3)
    cfg = make_config(tmp_path / "state", amqtt.port)  # protocol 5, the default
    assert cfg.broker.protocol == 5
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready, timeout=30)
        assert agent.link.failover.protocol_now == 3
        stored = [await agent.outbox.append("incident", {"n": i}) for i in range(5)]
        await wait_until(lambda: len(watcher.events("/evt/incident")) == 5)
        assert agent.link.status()["protocol"] == 3
    assert [e["id"] for e in watcher.events("/evt/incident")] == [s.id for s in stored]
    watcher.close()


async def test_agent_moves_to_the_next_node_when_its_node_is_killed(tmp_path: Path) -> None:
    gen_a, gen_b = run_mosquitto(tmp_path / "a"), run_mosquitto(tmp_path / "b")
    a, b = next(gen_a), next(gen_b)
    dead = free_port()  # nothing listens: the first entry fails at once
    hosts = [f"127.0.0.1:{dead}", f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
    cfg = make_config(tmp_path / "state", a.port, broker={"hosts": hosts})
    wb = Watcher(b.host, b.port)
    try:
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready, timeout=30)
            assert agent.link.failover.current == ("127.0.0.1", a.port)
            assert a.proc is not None
            a.proc.send_signal(signal.SIGKILL)  # the node the device is connected to
            a.proc.wait(10)
            stored = [await agent.outbox.append("incident", {"n": i}) for i in range(10)]
            await wait_until(lambda: agent.link.failover.current == ("127.0.0.1", b.port), 30)
            await wait_until(lambda: len(wb.events("/evt/incident")) >= 10, timeout=30)
            await wait_until(lambda: agent.outbox.depth == 0, timeout=30)
        assert {e["id"] for e in wb.events("/evt/incident")} == {s.id for s in stored}
    finally:
        wb.close()
        for gen in (gen_a, gen_b):
            gen.close()
