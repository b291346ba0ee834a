"""A patrol agent loads only what its role and config use (issue 13 point 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.demo.broker import Broker
from tests.kits.paths import REPO

ROOT = REPO

CHILD = """
import asyncio, sys
from pathlib import Path
from agent.runtime.agent import Agent
from tests.kits.agents import make_config

async def main() -> None:
    cfg = make_config(Path(sys.argv[1]), int(sys.argv[2]))
    async with Agent(cfg) as agent:
        while agent.link.session is None:
            await asyncio.sleep(0.05)
    heavy = ("cv2", "numpy", "PIL", "piexif", "gpiozero", "serial", "pynmea2")
    print(" ".join(m for m in heavy if m in sys.modules))

asyncio.run(main())
"""


def test_patrol_agent_without_devices_loads_no_vision_or_hardware_library(
    broker: Broker, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "state"), str(broker.port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == ""
