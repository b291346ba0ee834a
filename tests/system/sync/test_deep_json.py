"""Deeply nested JSON and TOML from outside (found by the fuzz): refused, not a crash.

Python's json raises RecursionError (not ValueError) past ~1000 levels; a few kilobytes of `[`
are enough. A retained central/state like that would stop the agent on every connect.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.config.model import load
from agent.demo.broker import Broker
from agent.errors import ConfigError
from agent.patrol.localapi import LocalApi
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.fuzz import RecordingPatrol
from tests.kits.mqtt import Watcher

DEEP = b"[" * 5000 + b"]" * 5000


async def test_a_retained_deep_central_state_does_not_stop_the_agent(
    broker: Broker, tmp_path: Path
) -> None:
    key = OpsKey("ops-2026a")
    w = Watcher(broker.host, broker.port)
    try:
        w.publish("grid/v1/central/state", DEEP, retain=True)
        async with Agent(make_config(tmp_path / "state", broker.port, key)) as agent:
            await wait_until(lambda: agent.link.ready, what="connected")
            # The downlink worker is still alive: a document after it is applied and acked.
            w.publish(f"grid/v1/{DEV}/desired/mode", key.doc("mode", {"mode": "emergency"}, ver=1))
            await wait_until(
                lambda: any(e["body"]["status"] == "applied" for e in w.events("/ack")),
                what="mode applied after the deep central/state",
            )
            assert agent.link.task is not None and not agent.link.task.done()
    finally:
        w.close()


def test_a_deep_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(f"x = {'[' * 5000}1{']' * 5000}\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(path)


async def test_a_deep_local_api_body_is_a_400(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    patrol = RecordingPatrol()
    async with LocalApi(patrol, socket_path=sock, max_body=16 * 1024):
        reader, writer = await asyncio.open_unix_connection(str(sock))
        writer.write(
            b"POST /incident HTTP/1.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(DEEP)}\r\n\r\n".encode()
            + DEEP
        )
        await writer.drain()
        reply = await reader.read()
        writer.close()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert patrol.calls == []
