"""`ops watch --archive` ends on SIGINT or SIGTERM at any moment of a flood, exit 0, and what it
archived is whole (docs/ops.md's evening: `kill -INT %1`). Once such a watch ignored SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.broker import Broker
from tests.kits.paths import REPO

MESSAGES = 3000


def flood(port: int, done: threading.Event) -> None:
    """Publish MESSAGES small status messages as fast as paho goes (QoS 0)."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in range(MESSAGES):
        client.publish("grid/v1/pd-0042/status", json.dumps({"v": 1, "i": i}).encode())
    client.loop_stop()
    client.disconnect()
    done.set()


def archived_lines(folder: Path) -> list[dict[str, object]]:
    files = sorted(folder.glob("*.jsonl"))
    return [json.loads(line) for f in files for line in f.read_text().splitlines()]


@pytest.mark.parametrize(
    ("sig", "after_s"),
    [(signal.SIGINT, 0.0), (signal.SIGINT, 0.02), (signal.SIGINT, 0.2), (signal.SIGTERM, 0.05)],
)
def test_a_signal_during_a_flood_ends_the_watch_cleanly(
    broker: Broker, tmp_path: Path, sig: signal.Signals, after_s: float
) -> None:
    arch = tmp_path / "archive"
    cmd = [sys.executable, "-m", "agent", "ops", "watch", "--archive", str(arch)]
    cmd += ["--port", str(broker.port)]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    with (tmp_path / "err").open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        probe = paho.Client(CallbackAPIVersion.VERSION2)
        probe.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 30
        while not list(arch.glob("*.jsonl")):  # subscribed once a probe gets archived
            assert time.monotonic() < deadline, (tmp_path / "err").read_text()
            probe.publish("grid/v1/central/state", b'{"v":1,"online":true}')
            probe.loop(0.05)
        probe.disconnect()
        done = threading.Event()
        threading.Thread(target=flood, args=(broker.port, done), daemon=True).start()
        time.sleep(after_s)  # the order being varied: the signal lands early, mid- or late flood
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        done.wait(30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack into `err`
            proc.wait(30)
    assert code == 0, (tmp_path / "err").read_text()[-4000:]
    lines = archived_lines(arch)  # every line whole JSON: nothing cut by the stop
    assert lines and all(
        set(line) == {"topic", "payload", "received_ms", "retain"} for line in lines
    )
