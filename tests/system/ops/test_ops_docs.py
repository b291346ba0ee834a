"""docs/ops.md runs as printed: every `$` command, in order, against Mosquitto and two agents.

The page is the test: its `console` blocks give the commands (`# exit N` says an expected
non-zero exit; a trailing `&` runs it in the background until `kill -INT %1`), and its blocks
tagged `file=NAME` are written to the working directory first. What the test adds is what an
operator's environment has: a home with an ops.toml for the local broker, the printed key line
pasted where the page says to paste it, and two patrol devices. The broker's port replaces
the page's 1883.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from agent.config.model import load
from agent.demo.broker import Broker
from agent.runtime.run import run
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.paths import REPO

ROOT = REPO
DOC = ROOT / "docs" / "ops.md"
DEVICES = ("pd-0042", "pd-0043")


@dataclass(frozen=True)
class Command:
    line: str
    exit: int
    background: bool


def parse(text: str) -> tuple[list[Command], dict[str, str]]:
    """The `$` commands of the console blocks, and the `file=NAME` blocks."""
    commands: list[Command] = []
    files: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\S*)(.*)$", lines[i])
        if not m:
            i += 1
            continue
        info, body, i = m.group(2), [], i + 1
        while not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        name = re.search(r"file=(\S+)", info)
        if name:
            files[name.group(1)] = "\n".join(body) + "\n"
        if m.group(1) != "console":
            continue
        j = 0
        while j < len(body):
            if not body[j].startswith("$ "):
                j += 1
                continue
            cmd = body[j][2:]
            while cmd.endswith("\\"):
                j += 1
                cmd = cmd[:-1] + " " + body[j].strip()
            j += 1
            code = re.search(r"#\s*exit (\d+)\s*$", cmd)
            cmd = re.sub(r"\s*#.*$", "", cmd).strip()
            bg = cmd.endswith("&")
            commands.append(Command(cmd.rstrip("&").strip(), int(code.group(1)) if code else 0, bg))
    return commands, files


def test_the_page_has_the_whole_day() -> None:
    commands, files = parse(DOC.read_text())
    verbs = {c.line.split()[2] for c in commands if c.line.startswith("edge-agent ops ")}
    assert verbs >= {
        "keygen",
        "devices",
        "import-checkpoints",
        "push-tasks",
        "push-config",
        "set-mode",
        "cmd",
        "retract",
        "watch",
        "media",
        "verify",
        "alerts",
        "report",
    }
    assert {"east-shore.csv", "west-shore.kml", "patrol-fleet.toml", "erqi-amap.csv"} <= set(files)


def device_toml(dev: str, home: Path, port: int, trust_line: str) -> str:
    return (
        f'[device]\nid = "{dev}"\nrole = "patrol"\nzones = ["ruyihu", "ruyihu.cbd"]\n'
        f'state_dir = "{home}/state-{dev}"\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\nkeepalive_s = 5\nconnect_timeout_s = 5\n'
        f"[trust]\n{trust_line}\n"
        "[sync]\nbackoff_base_s = 0.1\nbackoff_cap_s = 0.5\nconfig_health_window_s = 10\n"
        f'[camera]\nsource = "file:{home}/camera"\nwidth = 320\nheight = 240\n'
        "[modes.profiles.normal]\nstatus_interval_s = 2\n"
    )


@dataclass
class Day:
    """The operator's machine: a home, a work dir, the devices, background jobs, a watcher."""

    broker: Broker
    home: Path
    files: dict[str, str]
    env: dict[str, str]
    w: Watcher
    jobs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    agents: list[asyncio.Task[int]] = field(default_factory=list)
    trust_line: str = ""

    @property
    def work(self) -> Path:
        return self.home / "work"

    async def start_devices(self) -> None:
        for dev in DEVICES:
            path = self.work / f"{dev}.toml"
            path.write_text(device_toml(dev, self.home, self.broker.port, self.trust_line))
            self.agents.append(asyncio.create_task(run(load(path), str(path.name)), name=dev))
        await wait_until(
            lambda: all(self.w.on(f"grid/v1/{d}/state") for d in DEVICES), what="devices online"
        )

    async def background(self, line: str) -> None:
        # stderr kept in a file: a job that does not end shows its threads' stacks there.
        with (self.home / f"job-{len(self.jobs)}.err").open("wb") as err:
            self.jobs.append(
                subprocess.Popen(  # noqa: ASYNC220 - started, not waited for
                    ["bash", "-c", f"exec {line}"],
                    cwd=self.work,
                    env={**self.env, "PYTHONFAULTHANDLER": "1"},
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
        arch = self.home / "grid" / "archive"

        # Ready once it archives: probe until a message reaches the archive.
        def archived() -> bool:
            self.w.publish("grid/v1/central/state", b'{"v":1,"online":true}')
            return arch.is_dir() and any(arch.iterdir())

        await wait_until(archived, what="archive running")

    async def interrupt(self) -> None:
        job = self.jobs[0]
        job.send_signal(signal.SIGINT)
        try:
            code = await asyncio.to_thread(job.wait, 30)
        except subprocess.TimeoutExpired:
            job.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            await asyncio.to_thread(job.wait, 30)
            err = (self.home / "job-0.err").read_text(errors="replace")
            raise AssertionError(f"the job did not end on SIGINT:\n{err[-6000:]}") from None
        self.jobs.pop(0)
        assert code == 0

    async def foreground(self, cmd: Command) -> str:
        if cmd.line.startswith("edge-agent check-config") and not self.agents:
            await self.start_devices()
        proc = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", cmd.line],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == cmd.exit, f"$ {cmd.line}\n{out}"
        if "ops keygen" in cmd.line:
            self.trust_line = next(ln for ln in out.splitlines() if ln.startswith("ops_keys = "))
            for name, text in self.files.items():
                text = re.sub(r"(?m)^ops_keys = .*$", self.trust_line, text)
                (self.work / name).write_text(text)
        return out

    async def close(self) -> None:
        for job in self.jobs:
            job.kill()
            job.wait()
        for task in self.agents:
            task.cancel()
        await asyncio.gather(*self.agents, return_exceptions=True)
        self.w.close()


def check_output(line: str, out: str, work: Path) -> None:
    """What the page promises each command prints (or writes)."""
    if "push-config --role" in line:
        assert "2 devices: 2 applied" in out, out
        assert "what changes on patrol devices (2: pd-0042, pd-0043):" in out, out
    if "config show --config pd-0043" in line:
        assert "+ remote config ver" in out, out
        # The fleet document is merged over the file: the device keeps its own camera.
        assert re.search(r"camera\.source = .*\(file\)", out), out
        assert re.search(r"config_health_window_s = 10\.0 .*\(remote ver \d+\)", out), out
    if "west-shore.kml" in line:
        assert "radius 9 m is below 12.5 m" in out, out
    if "erqi-amap.csv" in line:
        assert ("names Amap/Tencent (GCJ-02)" in out) == ("--datum" not in line), out
    if "report patrol" in line and "--out patrol-day.csv" in line:
        head = (work / "patrol-day.csv").read_bytes().splitlines()[0]
        assert head.startswith("\ufeffgrid,task id".encode()), head
    if "ops media" in line:
        assert "1 media file(s) saved" in out, out
    if "ops verify" in line:
        assert "clean" in out, out


def operator_home(tmp_path: Path, port: int) -> Path:
    """A home with a work dir, a camera folder for the devices and the staff's ops.toml."""
    home = tmp_path / "home"
    (home / "work").mkdir(parents=True)
    (home / "camera").mkdir()
    Image.new("RGB", (320, 240), (90, 140, 60)).save(home / "camera" / "plaza.jpg")
    conf = home / ".config" / "edge-agent"
    conf.mkdir(parents=True)
    (conf / "ops.toml").write_text(
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\n'
        '[signing]\nkey_file = "~/.grid/ops-2026a.pem"\nkid = "ops-2026a"\n'
    )
    return home


async def test_every_command_of_the_page_runs(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands, files = parse(DOC.read_text().replace("1883", str(broker.port)))
    home = operator_home(tmp_path, broker.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}:{env['PATH']}", COLUMNS="200")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home / "work")
    day = Day(broker, home, files, env, Watcher(broker.host, broker.port))
    try:
        for cmd in commands:
            if cmd.line == "kill -INT %1":
                await day.interrupt()
            elif cmd.background:
                await day.background(cmd.line)
            else:
                check_output(cmd.line, await day.foreground(cmd), day.work)
    finally:
        await day.close()
