"""The Prometheus endpoint scraped over HTTP from a running agent; JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config.model import parse
from agent.demo.broker import Broker, free_port
from agent.errors import ConfigError
from agent.logs import JsonFormatter
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.aio import wait_until


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_endpoint_reports_outbox_link_and_delivery(
    broker: Broker, tmp_path: Path
) -> None:
    port = free_port()
    cfg = make_config(tmp_path / "state", broker.port, metrics={"enabled": True, "port": port})
    async with Agent(cfg) as agent:
        await wait_until(lambda: agent.link.ready)
        for i in range(3):
            await agent.outbox.append("incident", {"n": i})
        await wait_until(lambda: agent.outbox.depth == 0)
        m = await asyncio.to_thread(scrape, port)
    assert m[("edge_agent_up", ())] == 1
    assert m[("edge_agent_info", (("dev", DEV), ("mode", "normal"), ("role", "patrol")))] == 1
    assert m[("edge_link_up", ())] == 1
    assert m[("edge_link_connects_total", ())] >= 1
    assert m[("edge_outbox_depth", ())] == 0
    assert m[("edge_outbox_bytes", ())] == 0
    delivered = sum(v for (name, _), v in m.items() if name == "edge_delivered_total")
    assert delivered >= 3  # the incidents (and the agent's own events)
    assert m[("edge_gps_fix", ())] == 0  # no receiver configured
    assert m[("edge_checkins_total", ())] == 0
    assert m[("edge_task_restarts_total", ())] == 0
    # The endpoint closed with the agent.
    with pytest.raises(OSError):
        await asyncio.to_thread(scrape, port)


def test_metrics_are_off_and_loopback_by_default(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, 1)
    assert cfg.metrics.enabled is False and cfg.metrics.host == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"metrics\.host"):
        make_config(tmp_path, 1, metrics={"host": "localhost"})


def test_json_log_lines_parse() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("pd-1"))
    logger = logging.getLogger("agent.test_json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("camera %s: %s", "cam-1", "无画面")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "agent.test_json"
    assert first["message"] == "camera cam-1: 无画面" and first["device"] == "pd-1"
    assert first["time"].endswith("Z")
    assert "ValueError: boom" in second["exc"]


def test_logging_json_key_in_config(tmp_path: Path) -> None:
    data = make_config(tmp_path, 1).model_dump(mode="json", by_alias=True)
    data["logging"] = {"json": True}
    assert parse(data).logging.json_lines is True


def test_gateway_figures_become_labelled_metrics() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from agent.runtime.metrics import families

    sample = {
        "dev": "gw-1",
        "role": "camera_gateway",
        "now_ms": 10_000,
        "status": {
            "mode": "emergency",
            "uptime_s": 5,
            "outbox": {"depth": 2, "bytes": 300, "oldest_ms": 4_000},
            "gps": {"fix": None, "sats": None},
            "cameras": {"cam-1": {"state": "running", "fps": 4.5}, "cam-2": {"state": "failed"}},
            "detections": {"crowd": 2, "water_zone": 1},
            "loops": {"restarts": 3},
            "degraded": {"camera cam-2": "picamera2 is not installed"},
        },
        "delivered": {0: 1, 2: 7},
        "evicted": {5: 4},
        "link_up": False,
        "connects": 2,
    }

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return families(sample)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed())  # type: ignore[arg-type]
    m = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            m[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert m[("edge_outbox_oldest_age_seconds", ())] == 6.0
    assert m[("edge_delivered_total", (("priority", "2"),))] == 7
    assert m[("edge_evicted_total", (("priority", "5"),))] == 4
    assert m[("edge_detections_total", (("rule", "water_zone"),))] == 1
    assert m[("edge_camera_fps", (("camera", "cam-1"),))] == 4.5
    assert m[("edge_camera_running", (("camera", "cam-2"),))] == 0
    assert m[("edge_task_restarts_total", ())] == 3
    assert m[("edge_degraded", (("part", "camera cam-2"),))] == 1
    assert m[("edge_link_up", ())] == 0
    assert ("edge_gps_satellites", ()) not in m


def test_run_with_log_json_writes_json_lines(broker: Broker, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    conf = tmp_path / "agent.toml"
    conf.write_text(
        f'[device]\nid = "{DEV}"\nrole = "patrol"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--log-json", "--config", str(conf)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("running as" in r["message"] for r in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(json.loads(line))
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    started = [r for r in lines if "running as" in r["message"]]
    assert started and started[0]["device"] == DEV and started[0]["level"] == "INFO"
    assert all({"time", "level", "logger", "message", "device"} <= set(r) for r in lines)
