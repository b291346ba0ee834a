"""The worker's safety end to end: the pty GPS simulator walks a worker, the real agent judges,
the worker answers on the companion page (real HTTP), central sees it on the real Mosquitto.

Times are configured in seconds so the walks stay short: man-down after 1.5 s stands for the
10 minutes a district would configure, so the "12 minutes on a bench" is a little longer than
that. The simulator runs at 20x (twenty fixes a real second) so a short walk takes a second;
movement is judged against a 5 m radius here (10 m by default) for the same reason.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.clock import SystemClock
from agent.demo.broker import Broker, free_port
from agent.documents.state import DocState
from agent.patrol.companion.files import device_code
from agent.patrol.driver import PatrolDriver
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.patrol import FAR_END, at, cp, record, task

aiohttp = pytest.importorskip("aiohttp", reason="the companion page needs aiohttp (pip .[test])")

pytestmark = pytest.mark.slow  # each walk is a few seconds of real time

BENCH = at(0, 0)
WALK_IN = [at(-40, 0), BENCH]  # 40 m (28 s at 1.4 m/s: 1.4 s real), then sitting
FAR_CP = cp("far", at(300, 0))
STILL_S, GRACE_S = 1.5, 1.5


@dataclass
class Rig:
    agent: Agent
    gps: GpsSimulator
    central: Watcher
    page: Any  # aiohttp.ClientSession, paired
    base: str
    csrf: str

    @property
    def driver(self) -> PatrolDriver:
        role: Any = self.agent.role
        return role.driver  # type: ignore[no-any-return]

    async def answer(self) -> dict[str, Any]:
        """The page's big "我没事" button."""
        url = f"{self.base}/api/safety/ok"
        async with self.page.post(url, json={}, headers={"X-CSRF-Token": self.csrf}) as r:
            assert r.status == 200
            return dict(await r.json())

    async def state(self) -> dict[str, Any]:
        async with self.page.get(f"{self.base}/api/state") as r:
            return dict(await r.json())

    def alarms(self) -> list[dict[str, Any]]:
        return [e for e in self.central.events("/evt/alarm")]

    def checks(self) -> list[dict[str, Any]]:
        notices = self.central.events("/evt/notice")
        return [e["body"] for e in notices if e["body"]["type"] == "safety_check"]


@contextlib.asynccontextmanager
async def walking(
    tmp: Path,
    broker: Broker,
    *,
    walk: list[tuple[float, float]],
    tasks: list[dict[str, Any]],
    profile: dict[str, Any],
    noise_m: float = 2.0,
) -> AsyncIterator[Rig]:
    state = tmp / "state"
    DocState(state).set_tasks(record(tasks))
    port = free_port()
    async with GpsSimulator(
        walk=walk, speed=20, paused=True, noise_m=noise_m, outlier_prob=0, outage_prob=0, seed=7
    ) as gps:
        cfg = make_config(
            state,
            broker.port,
            gps={"port": gps.port},
            patrol={"tick_s": 0.1, "trail_every_s": 5, "man_down_radius_m": 5},
            modes={"profiles": {"normal": profile}},
            companion={"enabled": True, "host": "127.0.0.1", "port": port},
        )
        central = Watcher(broker.host, broker.port)
        base = f"http://127.0.0.1:{port}"
        try:
            async with (
                Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent,
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as page,
            ):
                async with page.post(f"{base}/api/pair", json={"code": device_code(state, 6)}) as r:
                    assert r.status == 200
                    csrf = (await r.json())["csrf"]
                await wait_until(lambda: agent.link.ready, what="connected")
                gps.resume()
                yield Rig(agent, gps, central, page, base, csrf)
        finally:
            central.close()


async def until_past(rig: Rig, mono_ms: int) -> None:
    await wait_until(lambda: rig.agent.clock.mono_ms() > mono_ms, what="that moment")


@pytest.mark.parametrize("noise_m", [2.0, 5.0], ids=["sitting", "gps-jitter"])
async def test_a_bench_sitter_is_prompted_answers_and_no_alarm_follows(
    broker: Broker, tmp_path: Path, noise_m: float
) -> None:
    # With 5 m of wandering error the sitter is still taken for sitting (not for walking).
    profile = {"man_down_after_s": STILL_S, "safety_grace_s": GRACE_S}
    tasks = [task("t-lake", [FAR_CP])]
    async with walking(
        tmp_path, broker, walk=WALK_IN, tasks=tasks, profile=profile, noise_m=noise_m
    ) as rig:
        await wait_until(lambda: rig.driver.safety.asking, timeout=15, what="the prompt")
        prompt = rig.driver.safety.watch.pending
        assert prompt is not None and prompt.kind == "man_down"
        shown = (await rig.state())["prompt"]
        assert shown["kind"] == "man_down" and 0 < shown["left_s"] <= GRACE_S
        assert (await rig.answer()) == {"answered": True}
        await until_past(rig, prompt.deadline_ms + 300)
        await wait_until(lambda: bool(rig.checks()), what="the check at central")
        assert rig.driver.safety.stats["alarms"] == 0
        assert rig.alarms() == []
    [check] = rig.checks()[:1]
    assert check["check"] == "man_down" and check["answer"] == "page"
    assert check["lat"] == pytest.approx(BENCH[0], abs=1e-4)


async def test_a_worker_who_stops_and_does_not_answer_raises_man_down_with_the_trail(
    broker: Broker, tmp_path: Path
) -> None:
    profile = {"man_down_after_s": STILL_S, "safety_grace_s": GRACE_S}
    tasks = [task("t-lake", [FAR_CP])]
    async with walking(tmp_path, broker, walk=WALK_IN, tasks=tasks, profile=profile) as rig:
        await rig.gps.wait_sent(29)  # 28 s walked (1.4 s real): the worker stops now
        stopped_ms = int(time.time() * 1000)
        await wait_until(lambda: bool(rig.alarms()), timeout=15, what="the alarm at central")
        [alarm] = rig.alarms()
    body = alarm["body"]
    assert body["type"] == "man_down" and rig.checks() == []
    # Within the configured still time plus the grace (and a tick or two of slack).
    assert alarm["ts"] - stopped_ms <= (STILL_S + GRACE_S + 1.0) * 1000
    trail = body["trail"]
    assert 3 <= len(trail) <= 20
    times = [p[2] for p in trail]
    assert times == sorted(times)  # newest last
    assert trail[-1][:2] == pytest.approx(list(BENCH), abs=1e-4)
    assert trail[0][0] < BENCH[0]  # it starts on the way in, south of the bench


@pytest.mark.parametrize("where", ["long-dwell-checkpoint", "outside-tasks"])
async def test_no_prompt_at_a_long_dwell_checkpoint_nor_outside_tasks(
    broker: Broker, tmp_path: Path, where: str
) -> None:
    profile = {"man_down_after_s": STILL_S, "safety_grace_s": GRACE_S}
    if where == "long-dwell-checkpoint":
        # The worker is meant to stand at the bench for 60 s (a long dwell).
        tasks = [task("t-lake", [cp("bench", BENCH, dwell=60), FAR_CP])]
    else:
        tasks = [task("t-lake", [FAR_CP], end=FAR_END // 1000)]  # its window ended long ago
    async with walking(tmp_path, broker, walk=WALK_IN, tasks=tasks, profile=profile) as rig:
        await rig.gps.wait_sent(29)
        await until_past(rig, rig.agent.clock.mono_ms() + int((STILL_S + GRACE_S + 1) * 1000))
        assert rig.driver.safety.stats == {"prompts": 0, "answered": 0, "alarms": 0}
        assert (await rig.state())["prompt"] is None
    assert rig.alarms() == []


async def test_lone_worker_fires_only_when_a_check_goes_unanswered(
    broker: Broker, tmp_path: Path
) -> None:
    # Walking the whole time (man-down is off anyway): only the periodic check asks.
    loop = [at(0, 0), at(0, 200), at(200, 200), at(200, 0), at(0, 0)]
    profile = {"lone_worker_every_s": 1.5, "safety_grace_s": 1.0}
    tasks = [task("t-lake", [FAR_CP])]
    async with walking(tmp_path, broker, walk=loop, tasks=tasks, profile=profile) as rig:
        await wait_until(lambda: rig.driver.safety.asking, timeout=15, what="first check")
        assert (await rig.answer()) == {"answered": True}
        assert rig.driver.safety.stats["alarms"] == 0
        await wait_until(lambda: rig.driver.safety.stats["prompts"] == 2, what="second check")
        await wait_until(lambda: bool(rig.alarms()), timeout=15, what="the alarm at central")
        await wait_until(lambda: bool(rig.checks()), what="the answered check at central")
        [alarm] = rig.alarms()
    assert alarm["body"]["type"] == "lone_worker" and alarm["body"]["trail"]
    [check] = rig.checks()
    assert check["check"] == "lone_worker" and check["answer"] == "page"
