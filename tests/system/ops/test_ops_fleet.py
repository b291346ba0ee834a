"""A fleet push to 20 agents on one broker: per-device acks, a summary, the right exit code."""

from __future__ import annotations

import json
import re
from contextlib import AsyncExitStack

from agent.runtime.agent import Agent
from tests.kits.agents import make_config
from tests.kits.aio import wait_until
from tests.kits.ops import Ops, import_tasks, synced

FLEET = [f"pd-{i:04d}" for i in range(20)]


def zone_of(dev: str) -> str:
    return "ruyihu.east" if int(dev[3:]) % 2 == 0 else "ruyihu.west"


async def test_fleet_push_to_twenty_agents(ops: Ops) -> None:
    tasks = await import_tasks(ops)
    async with AsyncExitStack() as stack:
        agents: dict[str, Agent] = {}
        for dev in FLEET:
            cfg = make_config(
                ops.dir / dev,
                int(ops.port),
                trust=ops.trust,
                device={"id": dev, "zones": ["ruyihu", zone_of(dev)]},
            )
            agents[dev] = await stack.enter_async_context(Agent(cfg, clock=synced()))
        await wait_until(
            lambda: all(a.link.ready for a in agents.values()),
            what="20 agents connected",
        )
        # One device already runs a newer task set: the fleet push is a rollback for it.
        last = FLEET[-1]
        code, out = await ops(
            "push-tasks", last, "--file", str(tasks), "--ver", str(10**14), *ops.signing()
        )
        assert code == 0, out
        # By zone, as the devices announce it in their birth: the mode is acked by ten devices.
        code, out = await ops(
            "set-mode", "emergency", "--zone", "ruyihu.east", "--reason", "flood", *ops.signing()
        )
        east = [d for d in FLEET if zone_of(d) == "ruyihu.east"]
        assert code == 0, out
        assert "10 devices: 10 applied" in out
        assert all(re.search(rf"{d}\W.*applied", out) for d in east)
        assert all(agents[d].modes.current.name == "emergency" for d in east)
        assert all(agents[d].modes.current.name == "normal" for d in FLEET if d not in east)
        # By role: 20 documents, 19 applied, one refused with its reason; exit code 1.
        code, out = await ops(
            "push-tasks", "--role", "patrol", "--file", str(tasks), *ops.signing()
        )
        assert code == 1, out
        assert "20 devices: 19 applied, 1 rejected" in out
        assert re.search(rf"{last}\W.*rejected\s.*rollback", out)
        assert all(agents[d].tasks_ver is not None for d in FLEET)
        # From a list file, one device offline: not waited for (its retained state says it is
        # offline), counted as such; the exit code is 3 (not every device applied yet).
        listing = ops.dir / "list.txt"
        listing.write_text("# east shore\n" + "\n".join(FLEET[:3]) + "\n")
        await agents[FLEET[2]].__aexit__(None, None, None)
        code, out = await ops(
            "push-tasks",
            "--devices-file",
            str(listing),
            "--file",
            str(tasks),
            "--timeout",
            "3",
            *ops.signing(),
        )
        assert code == 3, out
        assert "3 devices: 2 applied, 1 offline" in out
        assert "1 offline (pd-0002): the document stays retained" in out
        del agents[FLEET[2]]
        assert json.loads(tasks.read_text())["tasks"]
