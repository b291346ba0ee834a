"""One start-up order (issue 18, point 1): a downlink document that arrives at any moment of a
start (before it, while each step runs, after it; first start or restart; companion page on or
off; slow or fast steps) is the one the role runs, and it is acked `applied` only once the role
runs it. Real agents, a real Mosquitto, a PN532 simulator on a pty; the only injection is the
agent's start-up hook, which delays steps and publishes documents at chosen steps."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import agent.patrol.role
from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.patrol.role import PatrolRole
from agent.runtime.agent import STARTUP_STEPS, Agent
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.patrol import at, cp, http, task

TASKS_TOPIC = f"grid/v1/{DEV}/desired/tasks"
MODE_TOPIC = f"grid/v1/{DEV}/desired/mode"
# Where a start meets its document: published (retained) before the agent starts, or from the
# start-up hook once that step is done (the broker session may or may not be up by then).
MOMENTS = ("before", *STARTUP_STEPS)


def tag_of(ver: int) -> str:
    return f"04{ver:06X}"


def task_set(ver: int) -> dict[str, Any]:
    """Each ver has its own task and tag: following an older set is visible at once."""
    cps = [cp(f"cp-{ver}", at(0, 0), tags=(tag_of(ver),)), cp(f"cp-{ver}-far", at(900, 0))]
    return {"tasks": [task(f"t-{ver}", cps)]}


def mode_of(ver: int) -> str:
    return ("holiday", "major_event")[ver % 2]


def acked(central: Watcher, doc_id: str) -> dict[str, Any] | None:
    for env in central.events("/ack"):
        if env["body"]["ref"] == doc_id:
            return dict(env["body"])
    return None


class Start:
    """One start's order: where the document is published, which step is slow and how long,
    and whether the hook holds the start at `link` until the broker session is up (the order
    of the reported failures: the session came up before the role was ready)."""

    def __init__(self, rng: random.Random, i: int) -> None:
        self.publish_at = MOMENTS[i % len(MOMENTS)]
        self.slow_at = rng.choice(STARTUP_STEPS)
        self.delay_s = rng.choice((0.0, 0.05, 0.3))
        self.session_first = i % 2 == 0
        self.companion = i % 3 == 1
        self.fresh = i % 4 == 3  # a first start: a new device, nothing stored yet
        self.role_s = rng.choice((0.0, 0.2))  # a slow machine opening its devices

    def __repr__(self) -> str:
        return (
            f"publish at {self.publish_at}, {self.delay_s} s at {self.slow_at}, "
            f"session first {self.session_first}, companion {self.companion}, "
            f"devices open in {self.role_s} s, first start {self.fresh}"
        )


@pytest.fixture
def slow_devices(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The role opens its devices this many seconds late (holder[0]): a slow machine."""
    delay = [0.0]
    real = agent.patrol.role.open_devices

    async def late(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(delay[0])
        return await real(*args, **kwargs)

    monkeypatch.setattr(agent.patrol.role, "open_devices", late)
    return delay


def hook(start: Start, publish: Callable[[], None], agent: Callable[[], Agent]) -> Any:
    async def step(name: str) -> None:
        if name == "link" and start.session_first:
            await wait_until(lambda: agent().link.ready, what="session up")
            await asyncio.sleep(start.delay_s)  # documents may reach the held downlink
        if name == start.publish_at:
            await asyncio.to_thread(publish)
        if name == start.slow_at:
            await asyncio.sleep(start.delay_s)

    return step


async def run_start(
    start: Start,
    ver: int,
    *,
    cfg: Any,
    key: OpsKey,
    central: Watcher,
    sim: Pn532Simulator,
    slow: list[float],
) -> None:
    """Start the agent with `start`'s order; the task set and mode `ver` are what it acks and
    runs. The documents are cleared from the broker afterwards: each start meets only its own."""
    doc_id, mode_id = f"doc-{ver}", f"mode-{ver}"
    raw = key.doc("tasks", task_set(ver), ver=ver, doc_id=doc_id)
    mode = key.doc("mode", {"mode": mode_of(ver), "reason": "test"}, ver=ver, doc_id=mode_id)

    def publish() -> None:
        central.publish(MODE_TOPIC, mode, retain=True)
        central.publish(TASKS_TOPIC, raw, retain=True)

    if start.publish_at == "before":
        publish()
    slow[0] = start.role_s
    holder: list[Agent] = []
    agent = Agent(
        cfg,
        clock=SystemClock(synced=lambda: True),
        startup_hook=hook(start, publish, lambda: holder[0]),
    )
    holder.append(agent)
    async with agent:
        await check_start(agent, start, ver, central=central, sim=sim)
    central.publish(TASKS_TOPIC, b"", retain=True)
    central.publish(MODE_TOPIC, b"", retain=True)


async def check_start(
    agent: Agent, start: Start, ver: int, *, central: Watcher, sim: Pn532Simulator
) -> None:
    """Once acked, the role runs the documents: driver, local API, a tag, the page, the mode."""
    doc_id, mode_id = f"doc-{ver}", f"mode-{ver}"
    cfg = agent.cfg
    role = agent.role
    assert isinstance(role, PatrolRole)
    driver = role.driver
    await wait_until(lambda: acked(central, doc_id) is not None, what=f"ack {ver} ({start})")
    ack = acked(central, doc_id)
    assert ack is not None and ack["status"] == "applied", (start, ack)
    # Acked applied: the role runs this set now, not the one it started with.
    assert driver.tasks_view()["ver"] == ver, start
    status, _, body = await http(cfg.device.state_dir / "api.sock", "GET", "/tasks")
    assert status == 200 and [t["id"] for t in body["tasks"]] == [f"t-{ver}"], start
    # A tag of this set's checkpoint checks in (it is a checkpoint of a task).
    before = driver.reporter.counts.checkins
    sim.present(tag_of(ver))
    await wait_until(lambda: driver.reporter.counts.checkins > before, what=f"tag {ver} ({start})")
    sim.remove()
    await driver.drain()
    await wait_until(
        lambda: any(
            (e["body"].get("task_id"), e["body"].get("checkpoint_id")) == (f"t-{ver}", f"cp-{ver}")
            for e in central.events("/evt/checkin")
        ),
        what=f"check-in {ver} at central ({start})",
    )
    if role.companion is not None:
        # The page's check-in button: the set's other checkpoint is still open.
        answer = await driver.manual_checkin()
        assert answer.get("reason") != "no_active_task", (start, answer)
    await wait_until(lambda: acked(central, mode_id) is not None, what=f"mode {ver}")
    mode_ack = acked(central, mode_id)
    assert mode_ack is not None and mode_ack["status"] == "applied", (start, mode_ack)
    assert agent.modes.current.name == mode_of(ver), start


@pytest.mark.slow
async def test_a_document_arriving_at_any_start_up_moment_is_the_one_the_role_runs(
    broker: Broker, tmp_path: Path, slow_devices: list[float]
) -> None:
    key = OpsKey("ops-2026a")
    rng = random.Random(18)
    central = Watcher(broker.host, broker.port)
    state = tmp_path / "state"
    try:
        async with Pn532Simulator() as sim:
            base = {
                "nfc": {"port": sim.port, "poll_interval_s": 0.02},
                "patrol": {"tick_s": 0.1},
            }
            starts = 2 * len(MOMENTS)
            for i in range(starts):
                start = Start(rng, i)
                page = {"enabled": start.companion, "port": 0}
                where = tmp_path / f"state-{i}" if start.fresh else state
                cfg = make_config(where, broker.port, key, companion=page, **base)
                await run_start(
                    start, i + 1, cfg=cfg, key=key, central=central, sim=sim, slow=slow_devices
                )
    finally:
        central.close()
    # Every start acked its own documents once each, and nothing was refused.
    acks = [e["body"] for e in central.events("/ack")]
    assert {a["status"] for a in acks} == {"applied"}
    assert [a["ver"] for a in acks if a["typ"] == "tasks"] == list(range(1, starts + 1))
    assert [a["ver"] for a in acks if a["typ"] == "mode"] == list(range(1, starts + 1))


async def test_stopped_device_runs_the_task_set_pushed_while_it_was_stopped(
    broker: Broker, tmp_path: Path, slow_devices: list[float]
) -> None:
    """Reported: stop, push (retained), start -> acked and `reported` the new ver, but the
    local API and check-ins followed the old set until the next restart."""
    key = OpsKey("ops-2026a")
    central = Watcher(broker.host, broker.port)
    try:
        async with Pn532Simulator() as sim:
            cfg = make_config(
                tmp_path / "state",
                broker.port,
                key,
                nfc={"port": sim.port, "poll_interval_s": 0.02},
            )
            for ver in (1, 2, 3):
                # The session (and the document) comes up while the role opens its devices.
                start = Start(random.Random(0), 0)
                start.publish_at, start.delay_s, start.companion = "before", 0.0, False
                start.session_first = False
                start.role_s = 0.3  # the session comes up while the devices open
                await run_start(
                    start, ver, cfg=cfg, key=key, central=central, sim=sim, slow=slow_devices
                )
        reported = json.loads(central.on(f"grid/v1/{DEV}/reported")[-1])
        assert reported["tasks_ver"] == 3
    finally:
        central.close()
