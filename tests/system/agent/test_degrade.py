"""Optional parts that cannot start are reported (log, status, health) and the agent runs on."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.demo.broker import Broker
from agent.patrol.config import ButtonsConfig
from agent.patrol.devices import open_devices
from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until


class BrokenPinFactory:
    """A gpiozero pin factory on a board without a usable GPIO driver."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("no GPIO driver on this board")


async def test_missing_gpio_library_degrades_instead_of_crashing(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # The reported crash: gpiozero not installed on the board, buttons configured.
    monkeypatch.setitem(sys.modules, "gpiozero", None)  # `import gpiozero` raises ImportError
    cfg = make_config(tmp_path / "state", broker.port, buttons={"sos": 17, "led": 22})
    with caplog.at_level(logging.ERROR):
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready)
            body = await agent.status_body()
            assert "buttons" in body["degraded"]
            assert "gpiozero" in body["degraded"]["buttons"]
            problems = agent.device_problems()
            assert problems["buttons"] and "did not start" in problems["buttons"]
            # The rest runs: events still go out.
            await agent.outbox.append("incident", {"n": 1})
            await wait_until(lambda: agent.outbox.depth == 0)
    lines = [r for r in caplog.records if "buttons not started" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None  # one line, no traceback


async def test_pin_factory_failure_degrades(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "state", 1)
    async with contextlib.AsyncExitStack() as stack:
        dev = await open_devices(
            cfg,
            stack,
            buttons=ButtonsConfig(sos=17, led=22),
            camera=None,
            pin_factory=BrokenPinFactory(),
        )
    assert dev.presses is None and dev.feedback is None
    assert "no GPIO driver" in dev.degraded["buttons"]
    assert dev.checks["buttons"]() is not None
    assert {"degraded": dev.degraded} in [part() for part in dev.status]


async def test_one_gateway_camera_failing_leaves_the_others_running(
    broker: Broker, tmp_path: Path
) -> None:
    from tests.kits.vision import background, write_video

    video = write_video(tmp_path / "v.avi", [background() for _ in range(200)])
    good = {"id": "cam-good", "source": f"file:{video}", "fps": 5}
    # picamera2 is not installed here: that camera cannot run at all.
    bad = {"id": "cam-bad", "source": "picamera2:0", "fps": 5}
    cfg = make_config(
        tmp_path / "state", broker.port, device={"role": "camera_gateway"}, cameras=[good, bad]
    )
    async with Agent(cfg) as agent:
        await wait_until(lambda: "degraded" in agent.role.status())  # type: ignore[union-attr]
        body = await agent.status_body()
        assert list(body["degraded"]) == ["camera cam-bad"]
        await wait_until(lambda: agent.role.status()["cameras"]["cam-good"]["frames"] > 0)  # type: ignore[union-attr]
        problems = agent.device_problems()
        assert problems["camera cam-good"] is None and problems["camera cam-bad"]
        assert agent.supervisor.healthy()


async def test_local_api_port_taken_degrades(broker: Broker, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = make_config(tmp_path / "state", broker.port, patrol={"api_port": port})
        async with Agent(cfg) as agent:
            body = await agent.status_body()
            assert "local_api" in body["degraded"]
            assert agent.device_problems()["local_api"]
            await agent.outbox.append("incident", {"n": 1})
            await wait_until(lambda: agent.outbox.depth == 0)
