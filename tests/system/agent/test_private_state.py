"""Locked down: state files are not world-readable, no secret reaches a log."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until
from tests.kits.chaosrig import AgentProc, agent_toml, post
from tests.kits.pki import make_pki, tls_listener


async def test_state_files_and_api_socket_are_not_world_readable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    old = state / "seq.json"  # as an older version left it
    old.write_text('{"ceiling": 0}')
    old.chmod(0o644)
    agent = AgentProc(tmp_path, agent_toml(state, 1))  # no broker: all stays in the outbox
    agent.start()
    try:
        for _ in range(300):
            status, reply = await post(
                agent.socket, "/incident", {"category": "other", "level": 2, "photo": False}
            )
            if status == 201:
                break
            await asyncio.sleep(0.1)
        assert status == 201, reply
    finally:
        agent.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o710
    seen = []
    for path in state.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        seen.append(path.name)
        assert not mode & 0o007, f"{path} is open to other users: {oct(mode)}"
        if path.is_file():
            assert not mode & 0o077, f"{path} is open to the group: {oct(mode)}"
    assert "outbox.db" in seen and "seq.json" in seen


async def test_no_secret_reaches_a_log_or_the_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "pki", [DEV])
    broker = Broker(tmp_path / "broker", listener_conf=tls_listener(pki))
    secret = "Pw-7f3a9c1e-do-not-log"
    (tmp_path / "password").write_text(secret + "\n")
    cfg = make_config(
        tmp_path / "state",
        broker.port,
        broker={
            "tls": True,
            "ca_file": str(pki / "ca.crt"),
            "cert_file": str(pki / f"{DEV}.crt"),
            "key_file": str(pki / f"{DEV}.key"),
            "username": DEV,
            "password_file": str(tmp_path / "password"),
        },
        modes={"profiles": {"normal": {"status_interval_s": 0.5}}},
    )
    key_lines = [
        ln for ln in (pki / f"{DEV}.key").read_text().splitlines() if not ln.startswith("-----")
    ]
    caplog.set_level(logging.DEBUG)
    async with Agent(cfg, clock=SystemClock()) as agent:
        # First without a broker: connect failures are logged too.
        await wait_until(lambda: agent.link.connects == 0 and len(caplog.records) > 3)
        await asyncio.to_thread(broker.start)
        try:
            await wait_until(lambda: agent.link.ready, what="connected")
            body = json.dumps(await agent.status_body())
        finally:
            await asyncio.to_thread(broker.stop)
    logs = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    for where, text in (("log", logs), ("status", body)):
        assert secret not in text, where
        assert not any(line in text for line in key_lines), where
