"""The camera-alarm endpoint over TLS, and its refusal log limited to a summary per interval."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.logs import RefusalLog
from agent.vision.config import AlarmHttpConfig
from agent.vision.gateway import Gateway
from tests.kits.alarm_http import TOKEN, http, js, send
from tests.kits.pki import make_pki
from tests.kits.vision import MemoryMedia, MemorySink, no_sleep


def alarm_cfg(**extra: object) -> AlarmHttpConfig:
    return AlarmHttpConfig(token=TOKEN, port=0, cameras=["cam-gate-1"], read_timeout_s=0.5, **extra)


async def test_alarm_endpoint_serves_https(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", [])
    cfg = alarm_cfg(cert_file=pki / "server.crt", key_file=pki / "server.key")
    sink = MemorySink()
    async with Gateway([], sink, MemoryMedia(), alarm_http=cfg, sleep=no_sleep) as gw:
        client = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.alarm_port, ssl=client)
        writer.write(http(body=js({"type": "LineDetection", "zone": "gate"})))
        await writer.drain()
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.1 200")
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["events"] == ["start"]
        # Plain HTTP to the TLS port gets no HTTP answer (the handshake fails).
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.alarm_port)
        writer.write(http(body=js({"type": "x"})))
        await writer.drain()
        assert not (await reader.read()).startswith(b"HTTP/")
        writer.close()
    # Only the TLS push made an event (its start, and its end when the gateway stopped).
    assert {b["rule"] for b in sink.bodies()} == {"linedetection"}


def test_cert_and_key_go_together_and_bad_files_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        alarm_cfg(cert_file=tmp_path / "x.crt")
    (tmp_path / "x.crt").write_text("not a certificate")
    from agent.config.tls import server_context

    with pytest.raises(ConfigError, match="cannot load"):
        server_context(tmp_path / "x.crt", tmp_path / "x.key")


async def test_a_flood_of_refused_requests_logs_one_line_and_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="agent.vision.alarm_http")
    async with Gateway(
        [], MemorySink(), MemoryMedia(), alarm_http=alarm_cfg(), sleep=no_sleep
    ) as gw:
        for _ in range(40):
            status, *_ = await send(gw.alarm_port, http(body=js({"type": "x"}), auth=False))
            assert status == 401
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "refused 39 more requests" in lines[1] and "401" in lines[1]


def test_refusal_log_one_line_per_interval_then_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = [0.0]
    limiter = RefusalLog(logging.getLogger("t"), "api", 60, now=lambda: t[0])
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(100):
            t[0] = i * 1.5  # 150 s of refusals, one every 1.5 s
            limiter.refused(400, "peer", "bad")
        limiter.flush()
    msgs = [r.getMessage() for r in caplog.records]
    # Windows start at 0, 60 and 120 s: three first lines, three summaries.
    assert len(msgs) == 6
    assert sum(int(m.split("refused ")[1].split()[0]) for m in msgs if "more" in m) == 97
