"""A retained tasks document that arrives while the patrol role is still starting reaches the
driver.

Found by scripts/arm64-check (issue 22 point 1), natively too: the link is up before the role,
so the retained document of a freshly provisioned device arrived before the role existed; it
was stored and acked `applied`, but the driver patrolled without it until the next restart.
Since the one start-up order the downlink holds it until the role runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.demo.broker import Broker
from agent.patrol import role as patrol_role
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.patrol import at, cp, task


async def test_tasks_applied_while_the_role_starts_reach_the_driver(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = OpsKey()
    state = tmp_path / "state"
    w = Watcher.of(broker)
    body = {"tasks": [task("t-1", [cp("cp-1", at(0, 0))], staff=None)]}
    w.publish(f"grid/v1/{DEV}/desired/tasks", key.doc("tasks", body, ver=1), retain=True)
    real = patrol_role.start_patrol
    agent = Agent(make_config(state, broker, key))

    async def slow_start(ctx: Any, stack: Any) -> Any:
        # The fault: the role starts only after the session is up and the document arrived.
        await wait_until(lambda: agent.link.ready, what="session up")
        await asyncio.sleep(0.5)  # the retained document arrives meanwhile: the downlink holds it
        return await real(ctx, stack)

    monkeypatch.setattr(patrol_role, "start_patrol", slow_start)
    async with agent:
        assert agent.role is not None
        role = agent.role
        await wait_until(lambda: role.status()["patrol"]["tasks"], what="the driver has the task")
        assert [t["task_id"] for t in role.status()["patrol"]["tasks"]] == ["t-1"]
    w.close()
