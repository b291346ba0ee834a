"""A patrol agent loads only what its role and config use (issue 13 point 7, issue 22 point 3)."""

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
from agent.config.model import parse
from agent.runtime.agent import Agent

async def main() -> None:
    # Not tests.kits.agents.make_config: that kit imports cryptography for its signing key.
    cfg = parse({
        "device": {"id": "pd-0042", "role": "patrol", "state_dir": sys.argv[1]},
        "broker": {"host": "127.0.0.1", "port": int(sys.argv[2])},
        "trust": {"ops_keys": [{"kid": "ops-test", "public_key": "A" * 43}]},
    })
    async with Agent(cfg) as agent:
        while agent.link.session is None:
            await asyncio.sleep(0.05)
    heavy = ("cv2", "numpy", "PIL", "piexif", "gpiozero", "serial", "pynmea2")
    # Lazily imported since issue 22: signature checks load cryptography with the first
    # document; the operations tool (rich, the KML reader) is never part of a running agent.
    lazy = ("cryptography", "rich", "defusedxml", "agent.ops", "agent.doctor")
    # The gateway's config models load only for a file with [[cameras]] / [alarm_http].
    lazy += ("agent.vision", "agent.vision.config", "agent.camera.sources")
    # The metrics endpoint and the companion page are off by default: not imported either.
    lazy += ("prometheus_client", "aiohttp", "agent.patrol.companion", "agent.runtime.metrics")
    print(" ".join(m for m in heavy + lazy if m in sys.modules))

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


def test_run_command_parses_without_the_operations_tool() -> None:
    """`edge-agent run` builds its parser alone; the full parser still has every command."""
    code = (
        "import sys; from agent import cli; "
        "args = cli.build_parser(run_only=True).parse_args(['run', '--config', 'x.toml']); "
        "assert args.func is cli._cmd_run; "
        "print(' '.join(m for m in ('rich', 'agent.ops.cli', 'agent.doctor.cli', "
        "'agent.commands.provision', 'cryptography') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert proc.stdout.strip() == ""
    full = subprocess.run(
        [sys.executable, "-m", "agent", "ops", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert full.returncode == 0, full.stderr
