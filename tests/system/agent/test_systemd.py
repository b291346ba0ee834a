"""systemd integration: sd_notify READY/STATUS/WATCHDOG to a real datagram socket, the watchdog
withheld by a blocked loop or a dead critical task, and the unit file verified by systemd."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from agent.runtime.systemd import Watchdog, agent_watchdog, notify_address, watchdog_interval
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.paths import REPO
from tests.kits.units import verify_unit

ROOT = REPO
UNIT = ROOT / "systemd" / "edge-agent.service"


class NotifySocket:
    """The service manager's end: a bound AF_UNIX datagram socket collecting notifications."""

    def __init__(self, path: Path | None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:  # abstract namespace, as systemd itself uses
            name = f"grid-edge-test-{os.getpid()}-{time.monotonic_ns()}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        else:
            self.sock.bind(str(path))
            self.env_value = str(path)
        self.sock.setblocking(False)
        self.got: list[str] = []

    def drain(self) -> list[str]:
        """Every datagram waiting now, split into lines (also kept in `got`)."""
        lines: list[str] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            lines.extend(data.decode().split("\n"))
        self.got.extend(lines)
        return lines

    def count(self, line: str) -> int:
        self.drain()
        return self.got.count(line)

    def mentions(self, text: str) -> bool:
        self.drain()
        return any(text in line for line in self.got)

    def seen(self, prefix: str) -> bool:
        self.drain()
        return any(line.startswith(prefix) for line in self.got)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    s = NotifySocket(tmp_path / "notify")
    yield s
    s.sock.close()


def test_notify_address_and_watchdog_interval() -> None:
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@abc"}) == b"\0abc"
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, 7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7) == 15.0
    # Meant for another process (a wrapper started us): not ours to feed.
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_interval({}, 7) is None


async def test_without_notify_socket_nothing_happens() -> None:
    async with Watchdog(lambda: True, lambda: "x", env={}):
        await asyncio.sleep(0)


@pytest.mark.parametrize("abstract", [False, True])
async def test_ready_status_and_pings(tmp_path: Path, abstract: bool) -> None:
    ns = NotifySocket(None if abstract else tmp_path / "n")
    env = {"NOTIFY_SOCKET": ns.env_value, "WATCHDOG_USEC": "100000"}
    try:
        async with Watchdog(lambda: True, lambda: "running fine", env=env):
            await wait_until(lambda: ns.count("WATCHDOG=1") >= 3, 10, "three pings")
        assert ns.got[0] == "STATUS=running fine"
        assert "READY=1" in ns.got
        assert ns.got.index("READY=1") < ns.got.index("WATCHDOG=1")
        # STATUS= is sent again only when it changes.
        assert ns.got.count("STATUS=running fine") == 1
    finally:
        ns.sock.close()


async def test_blocked_event_loop_sends_no_pings(notify: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "100000"}  # a ping every 50 ms
    during_block: list[str] = []

    def hang() -> None:
        # Runs on the event loop: while it sleeps, nothing else on the loop can run.
        notify.drain()
        time.sleep(1.0)  # twenty ping intervals
        during_block.extend(notify.drain())

    async with Watchdog(lambda: True, env=env):
        await wait_until(lambda: notify.seen("WATCHDOG=1"), 10, "first ping")
        asyncio.get_running_loop().call_soon(hang)
        await asyncio.sleep(0)
        assert during_block == []
        notify.got.clear()
        await wait_until(lambda: notify.seen("WATCHDOG=1"), 10, "pings resume after the block")


async def test_unhealthy_withholds_pings_and_says_so(notify: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "100000"}
    healthy = [True]
    async with Watchdog(lambda: healthy[0], lambda: "ok" if healthy[0] else "broken", env=env):
        await wait_until(lambda: notify.seen("WATCHDOG=1"), 10, "first ping")
        healthy[0] = False
        await wait_until(lambda: notify.seen("STATUS=broken"), 10, "status says broken")
        notify.drain()
        await asyncio.sleep(1.0)  # twenty ping intervals
        assert "WATCHDOG=1" not in notify.drain()
        healthy[0] = True
        await wait_until(lambda: notify.seen("STATUS=ok"), 10, "status ok again")
        await wait_until(lambda: "WATCHDOG=1" in notify.drain(), 10, "pings resume")


async def test_dead_critical_task_of_a_real_agent_stops_pings(
    tmp_path: Path, broker: Broker, notify: NotifySocket
) -> None:
    cfg = make_config(tmp_path / "state", broker.port)
    env = {"NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "100000", "LANG": "en_US.UTF-8"}
    async with Agent(cfg) as agent, agent_watchdog(agent, env):
        await wait_until(lambda: notify.seen("READY=1"), 10, "READY=1")
        await wait_until(lambda: notify.mentions("broker connected"), 20, "STATUS: connected")
        await wait_until(lambda: notify.seen("WATCHDOG=1"), 10, "WATCHDOG=1 while healthy")
        link_task = agent.link.task
        assert link_task is not None
        link_task.cancel()  # the link's task dies; nothing else notices
        await wait_until(lambda: notify.seen("STATUS=failing: task link stopped"), 10, "status")
        notify.drain()
        await asyncio.sleep(1.0)  # twenty ping intervals
        assert "WATCHDOG=1" not in notify.drain()


def test_edge_agent_run_notifies_ready(
    tmp_path: Path, broker: Broker, notify: NotifySocket
) -> None:
    """The call site: `edge-agent run` under a NOTIFY_SOCKET sends READY=1, then pings."""
    conf = tmp_path / "agent.toml"
    conf.write_text(
        f'[device]\nid = "pd-0042"\nrole = "patrol"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    env = {**os.environ, "NOTIFY_SOCKET": notify.env_value, "WATCHDOG_USEC": "200000"}
    env.update(LANG="C.UTF-8", LC_ALL="", EDGE_AGENT_LANG="")  # the default: Chinese
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(conf)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (notify.seen("READY=1") and notify.seen("WATCHDOG=1")):
            assert proc.poll() is None, "agent exited"
            assert time.monotonic() < deadline, f"no READY/WATCHDOG: {notify.got}"
            time.sleep(0.05)
        assert any(line.startswith("STATUS=运行中") for line in notify.got)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "Restart=on-failure" in text
    verify_unit(UNIT, "/opt/edge-agent/.venv/bin/edge-agent", tmp_path)
