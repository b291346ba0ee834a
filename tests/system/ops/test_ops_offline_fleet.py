"""The offline fleet is addressable, and a push stops where it would be rejected or lose data.

Each case was reported by an operator following docs/ops.md against real agents.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from agent.config.model import Config
from agent.demo.broker import Broker
from agent.ops import guards
from agent.ops.devices import DeviceRow
from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.ops import Ops, import_tasks, synced


def device(ops: Ops, dev: str, role: str = "patrol", zones: Any = None) -> Config:
    return make_config(
        ops.dir / dev,
        int(ops.port),
        trust=ops.trust,
        device={"id": dev, "role": role, "zones": zones or ["ruyihu", "ruyihu.cbd"]},
    )


def retained(broker: Broker, topic: str) -> list[bytes]:
    """What a new subscriber finds retained on `topic` (empty: nothing)."""
    w = Watcher(broker.host, broker.port, topic)
    try:
        w.wait_for(lambda m: bool(m), timeout=1.0)
        return [p for t, p, _ in w.messages if t == topic and p]
    finally:
        w.close()


async def check_role_push_names_the_offline_device(ops: Ops, tasks: Path, here: Agent) -> None:
    """Check that `push-tasks --role patrol` picks the offline pd-0043 (its will named no role),
    names it offline once without waiting for it, and the online device applies the set."""
    code, out = await ops("push-tasks", "--role", "patrol", "--file", str(tasks), *ops.signing())
    assert code == 3, out  # not every device runs it yet; nobody waited for pd-0043
    assert "grid/v1/pd-0043/desired/tasks" in out
    assert "1 offline (pd-0043)" in out and "2 devices: 1 applied, 1 offline" in out
    # Not waited for, so not "no ack", and named once (before publishing), not again after.
    assert "pd-0043: offline" in out and "pd-0043: no ack" not in out, out
    assert "applies when they return: pd-0043" not in out, out
    assert here.tasks_ver is not None


async def check_pushes_to_the_wrong_devices_stop(ops: Ops, broker: Broker, tasks: Path) -> None:
    """Check that tasks for a zone with a camera gateway, and a mode or tasks for a typo'd zone,
    stop before publishing (with and without --dry-run) and leave nothing retained."""
    # Reported: `push-tasks --zone ruyihu` sent patrol tasks to a camera gateway.
    for extra in ([], ["--dry-run"]):  # Reported: --dry-run skipped the checks.
        argv = ["push-tasks", "--zone", "ruyihu", "--file", str(tasks), *extra]
        code, out = await ops(*argv, *ops.signing())
        assert code == 2, out
        assert "gw-0007: a camera_gateway device; tasks are for patrol devices" in out
        assert "nothing sent" in out and "published" not in out and '"topic"' not in out
    assert not retained(broker, "grid/v1/gw-0007/desired/tasks")

    # Reported: a typo'd zone published a retained document for nobody.
    for extra in ([], ["--dry-run"]):
        argv = ["set-mode", "major_event", "--zone", "ruyihu.cdb", "--reason", "x", *extra]
        code, out = await ops(*argv, *ops.signing())
        assert code == 2, out
        assert "no device announces zone ruyihu.cdb (did you mean ruyihu.cbd?)" in out
    assert not retained(broker, "grid/v1/zone/ruyihu.cdb/desired/mode")
    argv = ["push-tasks", "--zone", "ruyihu.cdb", "--file", str(tasks)]
    code, out = await ops(*argv, *ops.signing())
    assert code == 2 and "(did you mean ruyihu.cbd?)" in out, out


async def check_fleet_config_previews(ops: Ops) -> None:
    """Check the `push-config --dry-run` previews: a push stripping the devices' wiring stops; a
    plain change says what changes per device class."""
    # Reported: the documented fleet push stripped each device of its wiring.
    strip = ops.dir / "strip.json"
    strip.write_text(json.dumps({"gps": None, "device": {"staff_id": None}}))
    argv = ["push-config", "--role", "patrol", "--file", str(strip), "--dry-run"]
    code, out = await ops(*argv, *ops.signing())
    assert code == 2 and "removes gps, device.staff_id from every device" in out, out
    # A plain fleet change says what changes per device class, before publishing.
    change = ops.dir / "change.toml"
    change.write_text("[modes.profiles.normal]\nstatus_interval_s = 20\n")
    argv = ["push-config", "--zone", "ruyihu", "--file", str(change), "--dry-run"]
    code, out = await ops(*argv, *ops.signing())
    assert code == 0, out
    assert "what changes on camera_gateway devices (1: gw-0007):" in out
    assert "what changes on patrol devices (2: pd-0042, pd-0043):" in out
    assert "modes.profiles.normal.status_interval_s = 20" in out


@pytest.mark.slow
async def test_offline_devices_are_picked_and_bad_pushes_stop(ops: Ops, broker: Broker) -> None:
    tasks = await import_tasks(ops)
    # pd-0043 ran once and stopped: only its retained shutdown state speaks for it.
    async with Agent(device(ops, "pd-0043"), clock=synced()) as away:
        await wait_until(lambda: away.link.ready, what="pd-0043 online")
    async with AsyncExitStack() as stack:
        here = await stack.enter_async_context(Agent(device(ops, "pd-0042"), clock=synced()))
        gw_cfg = device(ops, "gw-0007", "camera_gateway", ["ruyihu"])
        gw = await stack.enter_async_context(Agent(gw_cfg, clock=synced()))
        await wait_until(
            lambda: here.link.ready and gw.link.ready,
            what="online",
        )
        # Reported: `--role` skipped offline devices (their will named no role).
        await check_role_push_names_the_offline_device(ops, tasks, here)
        await check_pushes_to_the_wrong_devices_stop(ops, broker, tasks)
        await check_fleet_config_previews(ops)

    # pd-0043 comes back and applies the set it missed.
    async with Agent(device(ops, "pd-0043"), clock=synced()) as back:
        await wait_until(lambda: back.tasks_ver is not None, what="pd-0043 applies on return")


def test_guards_are_pure() -> None:
    assert guards.zone_findings("ruyihu", {"ruyihu"}) == []
    assert "did you mean" not in guards.zone_findings("zzz", {"ruyihu"})[0]
    assert guards.parts_findings({"sync": {"inflight_window": 5}}, {"patrol"}) == []
    # A whole patrol agent.toml says `cameras = []`: not a removal on a patrol device.
    assert guards.parts_findings({"cameras": []}, {"patrol"}) == []
    assert guards.parts_findings({"cameras": []}, {"camera_gateway"}) != []
    assert guards.parts_findings({"gps": None}, {None}) != []
    assert guards.offline_line("tasks", []) is None
    assert "unless it has expired" in str(guards.offline_line("cmd", ["pd-1"]))


def test_a_snapshot_of_a_named_camera_stops_for_a_patrol_device() -> None:
    rows = {
        "pd-1": DeviceRow("pd-1", True, None, 1, "0.1", "patrol", None, None, "normal", None, None),
        "gw-1": DeviceRow(
            "gw-1", True, None, 1, "0.1", "camera_gateway", None, None, "normal", None, None
        ),
    }
    body = {"action": "snapshot", "args": {"camera_id": "cam-1"}}
    assert guards.role_findings("cmd", body, ["pd-1", "gw-1"], rows) == [
        "pd-1: a patrol device has one camera and takes no camera_id: it will reject the command"
    ]
    assert guards.role_findings("cmd", {"action": "snapshot", "args": {}}, ["pd-1"], rows) == []
    assert guards.role_findings("tasks", {}, ["pd-1", "gw-1"], rows) == [
        "gw-1: a camera_gateway device; tasks are for patrol devices"
    ]


def test_config_preview_leaves_out_the_other_roles_sections(tmp_path: Path) -> None:
    body = {"gps": {"port": "/dev/ttyS0"}, "sync": {"inflight_window": 5}}
    lines = guards.config_preview(body, {"camera_gateway": ["gw-1"], "patrol": ["pd-1"]})
    gw = lines[: lines.index("what changes on patrol devices (1: pd-1):")]
    assert "  ignored there: gps" in gw and '  gps.port = "/dev/ttyS0"' not in gw
    assert '  gps.port = "/dev/ttyS0"' in lines
