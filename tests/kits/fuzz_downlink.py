"""Fuzz target: forged and odd downlink documents through a real agent's downlink handler.

A document that is not applied (refused, duplicate, rolled back) must leave the applied state
(docs.json, tasks.json, the work mode) exactly as it was; only its ack is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from agent.clock import SystemClock
from agent.runtime.agent import Agent
from sync.session import Inbound
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.fuzz import LoopThread, deep_json, keyed

KEY = OpsKey("fuzz-dl")
STATE_FILES = ("docs.json", "tasks.json")

_tasks_body = (
    st.fixed_dictionaries({"tasks": st.lists(keyed, max_size=2)}) | keyed
)  # mostly wrong, sometimes a task list of wrong tasks
_mode_body = (
    st.fixed_dictionaries(
        {"mode": st.sampled_from(["normal", "emergency", "major_event", "night", ""])},
        optional={"reason": st.text(max_size=10) | st.integers()},
    )
    | keyed
)

downlink_case = st.one_of(
    st.tuples(
        st.just("mode"),
        st.sampled_from([{"dev": DEV}, {"zone": "ruyihu"}, {"zone": "elsewhere"}]),
        _mode_body,
        st.integers(min_value=-1, max_value=6),
    ),
    st.tuples(st.just("tasks"), st.just({"dev": DEV}), _tasks_body, st.integers(0, 6)),
    st.tuples(
        st.sampled_from(["mode", "tasks", "central"]),
        st.just({"dev": DEV}),
        st.binary() | deep_json | keyed.map(lambda v: json.dumps(v).encode()),
        st.just(0),
    ),
)


class AgentThread(LoopThread):
    """A real agent (no broker) whose downlink handler the fuzz feeds directly."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.agent: Agent | None = None

    def __enter__(self) -> AgentThread:
        cfg = make_config(self.state_dir, 1, KEY)
        self.agent = self.enter(Agent(cfg, clock=SystemClock(synced=lambda: True)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> tuple[Any, ...]:
        """The applied state: the state files' bytes and the effective mode."""
        assert self.agent is not None
        files = tuple(
            (self.state_dir / f).read_bytes() if (self.state_dir / f).exists() else None
            for f in STATE_FILES
        )
        return (*files, self.agent.modes.current)

    async def _handle(self, topic: str, raw: bytes) -> dict[str, Any] | None:
        assert self.agent is not None
        await self.agent.downlink.handle(Inbound(topic, raw, False, 0, 0))
        rows = await self.agent.outbox.fetch((-1, -1), 100_000)
        acks = [r for r in rows if r.topic.endswith("/ack")]
        if not acks:
            return None
        newest = max(acks, key=lambda r: r.rowid)
        body: dict[str, Any] = json.loads(newest.payload)["body"]
        return body

    def check(self, typ: str, target: dict[str, str], body: Any, ver: int) -> None:
        """Feed one document; unless its ack says applied, nothing applied may have changed."""
        if isinstance(body, bytes):
            raw, doc_id = body, None
        else:
            doc_id = f"doc-{ver}-{len(json.dumps(body, default=str))}"
            raw = KEY.doc(typ, body, ver=ver, target=target, doc_id=doc_id)
        zone = target.get("zone")
        topic = f"grid/v1/zone/{zone}/desired/mode" if zone else f"grid/v1/{DEV}/desired/{typ}"
        if typ == "central":
            topic = "grid/v1/central/state"
        before = self.snapshot()
        ack = self.run(self._handle(topic, raw))
        after = self.snapshot()
        if ack is None or ack["status"] != "applied" or ack["ref"] != doc_id:
            assert after == before, (typ, target, body, ver, ack)
