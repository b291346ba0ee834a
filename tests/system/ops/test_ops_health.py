"""`ops devices` tells the truth at once: problems, progress, unknown vs ok, offline devices.

The reported failures: `trouble=ok` when the tool simply heard nothing; an unplugged GPS port,
a dead NFC reader, a failed SOS button or a rolled-back config never shown; a plain
`push-config` to an online device ending "offline, applies later" because the 30 s push
timeout is shorter than the 60 s health window.
"""

from __future__ import annotations

import argparse
import io
import json

import pytest

from agent.ops import devices, fleet, output, pushcmd
from agent.ops.cli import add_ops_parser
from agent.ops.devices import DeviceRow
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from tests.kits.agents import DEV
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ops import Ops, import_tasks, json_lines, running, synced

NOW = 1_800_000_000_000


def state(dev: str, **body: object) -> tuple[str, bytes]:
    return (f"grid/v1/{dev}/state", json.dumps({"v": 1, **body}).encode())


def reported(dev: str, **body: object) -> tuple[str, bytes]:
    mode = {"name": "normal", "ver": None, "scope": "default"}
    return (f"grid/v1/{dev}/reported", json.dumps({"v": 1, "mode": mode, **body}).encode())


def test_nothing_heard_is_unknown_not_ok() -> None:
    # An older agent: a retained birth, a `reported` without problems, no status in the window.
    got = devices.rows(
        [
            state("pd-1", online=True, bdseq=1, ts=NOW - 5000, role="patrol"),
            reported("pd-1", config_ver=None, tasks_ver=None, ts=NOW - 5000),
        ],
        NOW,
    )
    [row] = got
    assert (row.health, row.trouble) == ("unknown", [])
    buf = io.StringIO()
    devices.render(got, output.make(stdout=buf, stderr=io.StringIO()), NOW)
    text = buf.getvalue()
    assert "health=unknown" in text and "ok" not in text.split("health=")[1].split()[0]
    assert "1 devices: 0 ok, 0 in trouble, 1 unknown (nothing heard)" in text


def test_retained_problems_and_progress_show_at_once_also_offline() -> None:
    rollback = "config ver 9 rolled back: health_failed: nfc: PN532 on /dev/ttyS2 is not answering"
    got = devices.rows(
        [
            state("pd-1", online=True, bdseq=1, ts=NOW - 60_000, role="patrol"),
            reported(
                "pd-1",
                config_ver=None,
                tasks_ver=7,
                ts=NOW - 30_000,
                problems=["GPS port /dev/ttyAMA0 is not open", rollback],
                progress={"done": 3, "missed": 1, "total": 8},
            ),
            state("pd-2", online=False, bdseq=4, reason="lost", role="patrol"),
            reported("pd-2", config_ver=None, tasks_ver=7, ts=NOW - 600_000, problems=[]),
            state("pd-3", online=True, bdseq=1, ts=NOW - 60_000, role="patrol"),
            reported("pd-3", config_ver=None, tasks_ver=7, ts=NOW - 60_000, problems=[]),
        ],
        NOW,
    )
    one, two, three = got
    assert one.health == "trouble" and one.trouble == [
        "GPS port /dev/ttyAMA0 is not open",
        rollback,
    ]
    assert one.progress == {"done": 3, "missed": 1, "total": 8}
    assert (two.online, two.health, two.trouble) == (False, "trouble", ["offline"])
    assert two.offline_since_ms == NOW - 600_000
    assert three.health == "ok"  # it said so itself: `problems: []`
    buf = io.StringIO()
    devices.render(got, output.make(stdout=buf, stderr=io.StringIO()), NOW)
    lines = buf.getvalue().splitlines()
    assert "progress=3 done, 1 missed, of 8" in lines[0] and rollback in lines[0]
    assert "offline (lost), last heard" in lines[1] and "(10 min ago)" in lines[1]
    assert lines[2].endswith("health=ok")
    assert lines[3] == "3 devices: 1 ok, 2 in trouble"


@pytest.mark.slow
async def test_devices_shows_an_unplugged_gps_port_at_once_and_while_offline(ops: Ops) -> None:
    tasks = await import_tasks(ops)
    walk = [(34.7790, 113.7312), (34.7796, 113.7313)]
    w = Watcher("127.0.0.1", int(ops.port))
    async with GpsSimulator(walk=walk, speed=5, loop=True) as gps:
        cfg = ops.config(gps={"port": gps.port, "baud": 9600})
        async with Agent(cfg, clock=synced(), health_every_s=0.2) as agent:
            await running(agent)
            code, out = await ops("push-tasks", DEV, "--file", str(tasks), *ops.signing())
            assert code == 0, out
            gps.unplug()
            await wait_until(lambda: bool(agent.problems()), what="GPS port noticed")

            def told() -> bool:
                got = [json.loads(p) for p in w.on(f"grid/v1/{DEV}/reported")]
                return bool(got) and bool(got[-1].get("problems"))

            await wait_until(told, what="reported republished")
            # No listening: the retained `reported` alone says it.
            code, out = await ops("devices", "--listen", "0")
            assert code == 0, out
            [line] = [ln for ln in out.splitlines() if ln.startswith(DEV)]
            assert "health=trouble: GPS port" in line and "is not open" in line
            assert "progress=0 done, 0 missed, of 2" in line
    w.close()
    code, out = await ops("devices", "--listen", "0", "--json")
    [row] = [r for r in json_lines(out) if r["dev"] == DEV]
    assert row["online"] is False and row["health"] == "trouble"
    assert row["trouble"][0] == "offline" and any("GPS port" in t for t in row["trouble"])
    assert row["offline_since_ms"] is not None and row["progress"]["total"] == 2


def test_push_config_waits_out_the_health_window_by_default() -> None:
    parser = argparse.ArgumentParser()
    add_ops_parser(parser.add_subparsers())
    args = parser.parse_args(["ops", "push-config", DEV, "--file", "x.toml"])
    # The reported failure: 30 s of waiting for an ack that comes after a 60 s window.
    assert pushcmd.ack_timeout(args.timeout, "config", {}) == 90.0
    body = {"sync": {"config_health_window_s": 10}}
    assert pushcmd.ack_timeout(args.timeout, "config", body) == 40.0
    assert pushcmd.ack_timeout(args.timeout, "tasks", {}) == 30.0
    assert pushcmd.ack_timeout(5.0, "config", {}) == 5.0  # --timeout wins


def test_no_ack_from_an_online_device_is_not_called_offline() -> None:
    def row(dev: str, online: bool) -> DeviceRow:
        return DeviceRow(dev, online, None, 1, "0.1.0", "patrol", None, None, "normal", None, None)

    inv = fleet.Inventory({"pd-1": row("pd-1", True), "pd-2": row("pd-2", False)})
    board = fleet.AckBoard("config", 5, {"pd-1": "a", "pd-2": "b"})
    err = io.StringIO()
    pushcmd._unacked(output.make(stdout=io.StringIO(), stderr=err), board, inv)
    text = err.getvalue()
    assert "offline, the retained document applies when they return: pd-2" in text
    assert "online but no ack in time: pd-1" in text
