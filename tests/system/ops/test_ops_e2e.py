"""The ops commands end to end: a real Mosquitto, a running agent, the CLI as staff would use it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent import __version__
from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from agent.runtime.run import run
from tests.kits.agents import DEV
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ops import (
    Ops,
    archived,
    import_tasks,
    json_lines,
    produce,
    running,
    start_archiving,
    synced,
)


@pytest.fixture
async def watcher(broker: Broker) -> AsyncIterator[Watcher]:
    w = Watcher(broker.host, broker.port)
    yield w
    w.close()


def published_ver(out: str) -> int:
    m = re.search(r"published \w+ ver (\d+)", out)
    assert m is not None, out
    return int(m.group(1))


async def test_push_tasks_from_imported_csv_is_applied(ops: Ops, watcher: Watcher) -> None:
    tasks = await import_tasks(ops)
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        assert agent.tasks_ver is None
        code, out = await ops("push-tasks", DEV, "--file", str(tasks), *ops.signing())
        assert code == 0, out
        assert "applied" in out
        ver = published_ver(out)
        # The ack is stored before the version is (sync/downlink.py): the version follows.
        await wait_until(lambda: agent.tasks_ver == ver, what="tasks ver recorded")
        assert agent.state.tasks is not None
        assert agent.state.tasks["body"] == json.loads(tasks.read_text())
        # devices: the agent online, with its version, tasks ver and mode, from retained topics.
        await wait_until(
            lambda: any(
                json.loads(p)["tasks_ver"] == ver for p in watcher.on(f"grid/v1/{DEV}/reported")
            ),
            what="reported tasks_ver",
        )
        code, out = await ops("devices", "--json", "--listen", "0")
        assert code == 0, out
        [row] = [r for r in json_lines(out) if r["dev"] == DEV]
        assert (row["online"], row["agent"], row["role"]) == (True, __version__, "patrol")
        assert (row["tasks_ver"], row["config_ver"], row["mode"]) == (ver, None, "normal")
        code, out = await ops("devices")
        assert code == 0 and DEV in out and "online" in out
        # The same document again (same ver) is a duplicate: not applied, exit 1.
        code, out = await ops(
            "push-tasks", DEV, "--file", str(tasks), *ops.signing(), "--ver", str(ver)
        )
        assert code == 1 and "duplicate" in out
    code, out = await ops("devices", "--json", "--listen", "0")
    [row] = [r for r in json_lines(out) if r["dev"] == DEV]
    assert (row["online"], row["reason"]) == (False, "shutdown")


async def test_zone_emergency_with_expiry(ops: Ops, watcher: Watcher) -> None:
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        flood = ["--zone", "ruyihu", "--reason", "flood on the east shore", "--expires", "5s"]
        code, out = await ops("set-mode", "emergency", *flood, "--expect", DEV, *ops.signing())
        assert code == 0 and "applied" in out, out
        assert agent.modes.current.name == "emergency"
        assert agent.modes.current.scope == "zone:ruyihu"
        code, out = await ops("devices", "--json", "--listen", "0")
        [row] = [r for r in json_lines(out) if r["dev"] == DEV]
        assert (row["mode"], row["mode_scope"]) == ("emergency", "zone:ruyihu")
        await wait_until(lambda: agent.modes.current.name == "normal", what="emergency expired")
        # A device mode, then an older ver of it: refused as a rollback, exit code 1.
        argv = ["set-mode", "holiday", "--dev", DEV, "--reason", "festival", *ops.signing()]
        code, out = await ops(*argv, "--ver", "5")
        assert code == 0 and agent.modes.current.name == "holiday", out
        code, out = await ops(*argv, "--ver", "4")
        assert code == 1 and "rollback" in out


async def test_cmd_status_now(ops: Ops, watcher: Watcher) -> None:
    cfg = ops.config(modes={"profiles": {"normal": {"status_interval_s": 3600}}})
    async with Agent(cfg, clock=synced()) as agent:
        await running(agent)
        assert not watcher.on(f"grid/v1/{DEV}/status")
        code, out = await ops("cmd", DEV, "status_now", *ops.signing())
        assert code == 0 and "applied" in out, out
        await wait_until(lambda: bool(watcher.on(f"grid/v1/{DEV}/status")), what="status")
        assert json.loads(watcher.on(f"grid/v1/{DEV}/status")[0])["mode"] == "normal"


async def test_push_config_is_applied(ops: Ops, watcher: Watcher) -> None:
    # A config switch rebuilds the agent, so the supervisor (agent.runtime.run.run) runs it here.
    cfg = ops.config(sync={"config_health_window_s": 1.0})
    data = cfg.model_dump(mode="json", exclude_none=True)  # the whole file, local keys too
    data["modes"]["profiles"]["normal"]["status_interval_s"] = 42.0
    src = ops.dir / "config.json"
    src.write_text(json.dumps(data))
    task = asyncio.create_task(run(cfg))
    try:
        await wait_until(lambda: bool(watcher.on(f"grid/v1/{DEV}/state")), what="birth")
        code, out = await ops(
            "push-config", DEV, "--file", str(src), "--timeout", "60", *ops.signing()
        )
        assert code == 0 and "applied" in out, out
        assert "device.id" in out and "device.state_dir" in out  # left out, not refused
        ver = published_ver(out)
        await wait_until(
            lambda: any(
                json.loads(p)["config_ver"] == ver for p in watcher.on(f"grid/v1/{DEV}/reported")
            ),
            what="reported config_ver",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ----- watch --archive, then verify ----------------------------------------------------------


def doctor(src: Path, dst: Path, incident_seq: int, media_id: str) -> None:
    """Drop one event and one chunk, and change one byte of the first check-in."""
    dst.mkdir()
    lines = []
    first_checkin = True
    for path in sorted(src.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            payload = base64.b64decode(rec["payload"])
            if rec["topic"] == f"grid/v1/{DEV}/media/{media_id}/1":
                continue
            if (
                rec["topic"].endswith("/evt/incident")
                and json.loads(payload)["seq"] == incident_seq
            ):
                continue
            if rec["topic"].endswith("/evt/checkin") and first_checkin:
                first_checkin = False
                altered = payload.replace(b'"cp-pier"', b'"cp-pies"')
                assert len(altered) == len(payload) and altered != payload
                rec["payload"] = base64.b64encode(altered).decode()
            lines.append(json.dumps(rec))
    (dst / "grid-doctored.jsonl").write_text("\n".join(lines) + "\n")


async def test_watch_archive_then_verify(ops: Ops, broker: Broker, tmp_path: Path) -> None:
    arch = tmp_path / "archive"
    task, stop, archive = await start_archiving(broker, arch)
    tasks = await import_tasks(ops)
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
        code, out = await ops("push-tasks", DEV, "--file", str(tasks), *ops.signing())
        assert code == 0, out
        made = await produce(agent)
        stored = made["last_seq"]  # the ack, then every event produce() stored

        def complete() -> bool:
            msgs = archived(arch)
            seqs = {
                json.loads(m.payload)["seq"]
                for m in msgs
                if "/evt/" in m.topic or m.topic.endswith("/ack")
            }
            chunks = [m for m in msgs if "/media/" in m.topic]
            return seqs == set(range(1, stored + 1)) and len(chunks) == 2

        await wait_until(complete, what="everything archived")
    stop.set()
    assert await task > 0
    archive.close()

    code, out = await ops("verify", DEV, "--archive", str(arch), broker=False)
    assert code == 0, out
    assert "clean" in out

    doctored = tmp_path / "doctored"
    doctor(arch, doctored, made["incident_seq"], made["media_id"])
    code, out = await ops("verify", DEV, "--archive", str(doctored), "--json", broker=False)
    assert code == 1
    report = json.loads(out)
    problems = {f["code"]: f for f in report["findings"] if f["problem"]}
    assert set(problems) == {"seq_gap", "chain_break", "media_chunk_missing"}
    assert problems["seq_gap"]["seqs"] == [made["incident_seq"]]
    assert problems["media_chunk_missing"]["ref"] == made["media_id"]
    # The altered first check-in is caught by the second one's prev.
    assert problems["chain_break"]["seqs"][0] == made["first_checkin_seq"]


async def test_watch_cli_archives_retained_state(ops: Ops, tmp_path: Path) -> None:
    async with Agent(ops.config(), clock=synced()) as agent:
        await running(agent)
    # The graceful-offline state stays retained; a watch started later receives it at once.
    code, out = await ops("watch", "--archive", str(tmp_path / "a"), "--seconds", "2")
    assert code == 0, out
    assert f"{DEV} state" in out and "online=False" in out
    states = [m for m in archived(tmp_path / "a") if m.topic == f"grid/v1/{DEV}/state"]
    assert json.loads(states[0].payload)["reason"] == "shutdown"
