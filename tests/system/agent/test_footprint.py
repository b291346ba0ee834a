"""A patrol agent loads only what its role and config use (issue 13 point 7, issue 22 point 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.demo.broker import Broker
from tests.kits.mqtt import Watcher
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


# `edge-agent run` as a device runs it, with a handler that writes what it has imported when
# the test sends SIGUSR1 (the agent's loop handles SIGINT and SIGTERM only).
RUN = """
import json, signal, sys, types
from agent import cli

def dump(_sig, _frame):
    # True: a module; False: a stand-in (agent.runtime.memory.defer_imports) or other object.
    loaded = {name: type(m) is types.ModuleType for name, m in sys.modules.items()}
    from agent.config.model import Config
    state = {"loaded": loaded, "config_validator_built": Config.__pydantic_complete__}
    with open(sys.argv[2], "w") as out:
        json.dump(state, out)

signal.signal(signal.SIGUSR1, dump)
sys.exit(cli.main(["run", "--config", sys.argv[1]]))
"""


def _online(payload: bytes) -> bool:
    return json.loads(payload).get("online") is True


def _idle_run_state(broker: Broker, tmp_path: Path) -> dict[str, object]:
    """Start `edge-agent run` (patrol, no devices), wait for its birth, read its imports."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[device]\nid = "pd-0043"\nrole = "patrol"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    out, log = tmp_path / "modules.json", tmp_path / "agent.log"
    watcher = Watcher.of(broker, "grid/v1/pd-0043/state")
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN, str(cfg), str(out)],
            cwd=ROOT,
            stdout=err,
            stderr=err,
        )
    try:
        born = watcher.wait_for(lambda msgs: any(_online(p) for _, p, _ in msgs), 60)
        assert born, f"no birth from the agent: {log.read_text()}"
        os.kill(proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while not out.exists() or not out.read_text().endswith("}"):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        return dict(json.loads(out.read_text()))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        watcher.close()


def test_idle_run_builds_no_validator_and_defers_unused_modules(
    broker: Broker, tmp_path: Path
) -> None:
    """Issue 22 point 3: an idle `edge-agent run` validated its config in a forked child.

    So the agent's own process built no pydantic validator (nor loaded pydantic's plugin loader
    and, through importlib.metadata, the email package), and paho's urllib.request import is
    the deferred stand-in: no http.client either.
    """
    state = _idle_run_state(broker, tmp_path)
    loaded = state["loaded"]
    assert isinstance(loaded, dict)
    assert state["config_validator_built"] is False
    for name in ("pydantic.plugin._loader", "importlib.metadata", "email.message", "http.client"):
        assert name not in loaded, name
    assert loaded["urllib.request"] is False  # the stand-in, not the module
    assert loaded["paho.mqtt.client"] is True
