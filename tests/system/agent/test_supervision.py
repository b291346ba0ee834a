"""Every long-running loop is supervised: a crash is noticed, logged, shown, and restarted or
fatal. Faults are injected (monkeypatch) into a real agent with a real broker and pty devices."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.errors import StoreError
from agent.runtime.agent import Agent
from agent.runtime.supervisor import Supervisor
from firmware_bridge.aio import Backoff
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.vision import background, with_boxes, write_video

HERE = (34.7706, 113.7237)  # Ruyi Lake, Zhengzhou


async def no_sleep(_s: float) -> None:
    await asyncio.sleep(0)


# ----- the supervisor itself -------------------------------------------------------------------
async def test_crashed_loop_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fatal: list[str] = []
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"bug {runs}")
        done.set()
        await asyncio.Event().wait()

    async with Supervisor(on_fatal=lambda n, e: fatal.append(n), sleep=no_sleep) as sup:
        sup.spawn("flaky", flaky)
        await asyncio.wait_for(done.wait(), 10)
        st = sup.status()
        assert st["troubled"]["flaky"] == {
            "state": "running",
            "restarts": 2,
            "last_error": "RuntimeError: bug 2",
        }
        assert sup.healthy() and not fatal and sup.names() == ["flaky"]
    assert "loop flaky crashed" in caplog.text and "RuntimeError: bug 1" in caplog.text


async def test_loop_that_keeps_crashing_is_fatal() -> None:
    fatal: list[str] = []

    async def broken() -> None:
        raise ValueError("always")

    async with Supervisor(on_fatal=lambda n, e: fatal.append(n), sleep=no_sleep) as sup:
        task = sup.spawn("broken", broken)
        await asyncio.wait_for(task, 10)
        assert fatal == ["broken"] and not sup.healthy()
        assert sup.status()["troubled"]["broken"]["restarts"] == 5
        assert sup.problems() == {"loop broken": "failed: ValueError: always"}


async def test_a_part_that_keeps_crashing_is_given_up_and_the_agent_runs_on() -> None:
    fatal: list[str] = []

    async def broken() -> None:
        raise ValueError("always")

    async with Supervisor(on_fatal=lambda n, e: fatal.append(n), sleep=no_sleep) as sup:
        task = sup.spawn("camera", broken, essential=False)
        with pytest.raises(ValueError, match="always"):  # handed to the part's owner
            await asyncio.wait_for(task, 10)
        assert fatal == [] and sup.healthy()
        assert sup.problems() == {"loop camera": "failed: ValueError: always"}


async def test_a_loop_that_runs_a_while_between_crashes_keeps_being_restarted() -> None:
    now = [0.0]
    fatal: list[str] = []
    runs = 0

    async def crashes_after_a_minute() -> None:
        nonlocal runs
        runs += 1
        now[0] += 61.0  # ran for longer than stable_s: not a crash loop
        if runs < 12:
            raise RuntimeError("rare bug")
        await asyncio.Event().wait()

    async with Supervisor(
        on_fatal=lambda n, e: fatal.append(n), sleep=no_sleep, mono=lambda: now[0]
    ) as sup:
        sup.spawn("rare", crashes_after_a_minute)
        await wait_until(lambda: runs == 12, what="twelfth start")
        assert not fatal and sup.restarts == 11


async def test_restart_false_is_fatal_at_once_and_backoff_is_jittered() -> None:
    fatal: list[str] = []
    slept: list[float] = []

    async def record(s: float) -> None:
        slept.append(s)

    async def boom() -> None:
        raise RuntimeError("x")

    async with Supervisor(
        on_fatal=lambda n, e: fatal.append(n), sleep=record, backoff=Backoff(1.0, 4.0)
    ) as sup:
        await asyncio.wait_for(sup.spawn("once", boom, restart=False), 5)
        assert fatal == ["once"] and slept == []
        await asyncio.wait_for(sup.spawn("again", boom), 5)
        assert len(slept) == 5 and all(0.5 <= s <= 4.0 for s in slept)


async def test_exit_cancels_every_loop() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async with Supervisor(on_fatal=lambda n, e: None) as sup:
        task = sup.spawn("forever", forever)
        await started.wait()
    assert task.cancelled()


# ----- injected faults in a running agent ------------------------------------------------------
def once(real: Callable[..., Any], exc: BaseException) -> Callable[..., Any]:
    """`real`, except that the first call raises `exc` (sync or async alike)."""
    state = {"left": 1}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if state["left"]:
            state["left"] -= 1
            raise exc
        return real(*args, **kwargs)

    return wrapper


def restarted(agent: Agent, prefix: str) -> bool:
    """A loop whose name starts with `prefix` crashed, was restarted and runs again."""
    troubled = agent.supervisor.status()["troubled"]
    return any(
        n.startswith(prefix) and t["restarts"] >= 1 and t["state"] == "running"
        for n, t in troubled.items()
    )


def patch_once(mp: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    mp.setattr(owner, name, once(getattr(owner, name), RuntimeError(f"injected in {name}")))


RESTARTED = [
    # (loop name prefix, module:class, attribute)
    ("gps-pump", "firmware_bridge.nmea:NmeaDecoder", "feed"),
    ("pn532-poll", "firmware_bridge.pn532_driver:Pn532Reader", "_poll_once"),
    ("patrol-tick", "agent.patrol.core.engine:PatrolEngine", "tick"),
    ("patrol-fixes", "agent.patrol.core.engine:PatrolEngine", "on_fix"),
    ("media-reaper", "agent.media:MediaStore", "reap"),
    ("status", "agent.runtime.reporting:", "status_body"),
    ("good-time", "agent.documents.state:DocState", "note_good_time"),
]
FATAL = [
    ("outbox-writer", "sync.outbox:Outbox", "_commit"),
    ("outbox-deleter", "sync.outbox:Outbox", "delete"),
    ("downlink", "sync.downlink:Downlink", "handle"),
    ("mqtt-link", "sync.link:MqttLink", "_connect_once"),
]


def resolve(spec: str) -> Any:
    import importlib

    module, _, cls = spec.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, cls) if cls else mod


def patrol_agent(
    tmp: Path, broker: Broker, gps: GpsSimulator, nfc: Pn532Simulator, **sections: Any
) -> Agent:
    cfg = make_config(
        tmp / "state",
        broker.port,
        gps={"port": gps.port},
        nfc={"port": nfc.port, "poll_interval_s": 0.05},
        patrol={"tick_s": 0.05, "reap_interval_s": 0.1},
        modes={"profiles": {"normal": {"status_interval_s": 0.2}}},
        **sections,
    )
    return Agent(cfg, clock=SystemClock(synced=lambda: True))


@pytest.mark.parametrize(("loop", "owner", "attr"), RESTARTED, ids=[r[0] for r in RESTARTED])
async def test_a_crashed_loop_is_noticed_and_restarted(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
    owner: str,
    attr: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)
    patch_once(monkeypatch, resolve(owner), attr)
    walk = [HERE, (HERE[0] + 0.0001, HERE[1])]
    async with (
        GpsSimulator(walk=walk, speed=20, loop=True) as gps,
        Pn532Simulator() as nfc,
        patrol_agent(tmp_path, broker, gps, nfc) as agent,
    ):
        await wait_until(lambda: restarted(agent, loop), timeout=30, what=f"{loop} restarted")
        body = await agent.status_body()
        assert body["loops"]["restarts"] >= 1
        assert any(n.startswith(loop) for n in body["loops"]["troubled"])
        assert agent.outcome == "stop"  # still running, not crashed
    assert f"loop {loop}" in caplog.text and f"injected in {attr}" in caplog.text


@pytest.mark.parametrize(("loop", "owner", "attr"), FATAL, ids=[r[0] for r in FATAL])
async def test_a_crashed_sync_loop_stops_the_agent_with_an_error(
    own_broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
    owner: str,
    attr: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = own_broker  # this test stops and restarts its broker
    cfg = make_config(tmp_path / "state", broker.port)
    watcher = Watcher("127.0.0.1", broker.port)
    try:
        async with Agent(cfg) as agent:
            await wait_until(lambda: agent.link.ready, what="connected")
            patch_once(monkeypatch, resolve(owner), attr)  # armed once the agent runs
            appended = asyncio.create_task(agent.outbox.append("incident", {"n": 1}))
            if loop == "downlink":
                watcher.publish("grid/v1/central/state", b'{"online":true,"ts":1}', retain=True)
            if loop == "mqtt-link":
                broker.stop()  # the next CONNECT attempt hits the injected bug
                broker.start()
            await asyncio.wait_for(agent.wait(), 30)
            assert agent.outcome == "crash"
            assert not agent.supervisor.healthy()
            assert agent.supervisor.status()["troubled"][loop]["state"] == "failed"
            if loop == "outbox-writer":
                # Its caller is told at once instead of waiting for a writer that is gone.
                with pytest.raises(StoreError, match="writer stopped"):
                    await asyncio.wait_for(appended, 10)
            else:
                await asyncio.wait_for(appended, 10)
    finally:
        watcher.close()
    assert f"loop {loop} cannot be restarted" in caplog.text


GATEWAY_RESTARTED = [
    ("vision:cam-plaza-1:analysis", "agent.vision.rules", "evaluate"),
    ("vision:alarms:sweeper", "agent.vision.alarms:AlarmForwarder", "sweep"),
]


@pytest.mark.parametrize(
    ("loop", "owner", "attr"), GATEWAY_RESTARTED, ids=[r[0] for r in GATEWAY_RESTARTED]
)
async def test_a_crashed_camera_loop_is_noticed_and_restarted(
    broker: Broker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loop: str,
    owner: str,
    attr: str,
) -> None:
    patch_once(monkeypatch, resolve(owner), attr)
    bg = background()
    video = write_video(tmp_path / "plaza.avi", [with_boxes(bg, [(40, 300, 60, 60)], 90)] * 20)
    camera = {"id": "cam-plaza-1", "source": f"file:{video}", "fps": 5}
    cfg = make_config(
        tmp_path / "state",
        broker.port,
        device={"role": "camera_gateway"},
        cameras=[camera],
        alarm_http={"token": "t0ken-t0ken-t0ken", "port": 0, "cameras": ["cam-gate-1"]},
    )
    async with Agent(cfg) as agent:
        await wait_until(lambda: restarted(agent, loop), timeout=30, what=f"{loop} restarted")
        assert agent.outcome == "stop" and agent.supervisor.healthy()
