"""TLS with a per-device client certificate, against a Mosquitto that requires one."""

from __future__ import annotations

from pathlib import Path

from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.pki import start_tls_broker


async def test_tls_with_client_certificate(tmp_path: Path) -> None:
    broker, pki = start_tls_broker(tmp_path)
    try:
        cfg = make_config(
            tmp_path / "state",
            broker.port,
            broker={
                "tls": True,
                "ca_file": str(pki / "ca.crt"),
                "cert_file": str(pki / "device.crt"),
                "key_file": str(pki / "device.key"),
            },
        )
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready, what="TLS session")
            await agent.outbox.append("incident", {"n": 1})
            await wait_until(lambda: agent.outbox.depth == 0, what="delivered over TLS")
        # Without the client certificate the broker refuses the handshake.
        bare = make_config(
            tmp_path / "state2", broker.port, broker={"tls": True, "ca_file": str(pki / "ca.crt")}
        )
        async with Agent(bare) as agent:
            await wait_until(lambda: agent.link.machine.failures >= 1, what="refused")
            assert agent.link.session is None
    finally:
        broker.stop()
    assert "pd-0042" in broker.log()
