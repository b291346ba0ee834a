"""A device hears live documents once `link.ready` holds and its `reported` follows the birth.

CI once failed a test that published a live (unretained) document as soon as the session was
up: with amqtt under load the device's SUBSCRIBE was not yet in, and the document reached
nobody. A gate holds the SUBSCRIBE, so the broker takes it before or after a document, by choice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.demo.broker import Broker
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, OpsKey, make_config
from tests.kits.aio import wait_until
from tests.kits.mqtt import Watcher
from tests.kits.mqttgate import SubscribeGate

MODE_TOPIC = f"grid/v1/{DEV}/desired/mode"


KEY = OpsKey("ops-2026a")


@contextlib.asynccontextmanager
async def held_agent(broker: Broker, state: Path) -> AsyncIterator[tuple[Agent, SubscribeGate]]:
    """A patrol agent behind a gate that holds its SUBSCRIBE; yields once it is held."""
    async with (
        SubscribeGate(broker.port) as gate,
        Agent(make_config(state, gate.port, KEY)) as agent,
    ):
        await gate.held.wait()
        yield agent, gate


def mode_acks(w: Watcher) -> list[tuple[int, str]]:
    return [(e["body"]["ver"], e["body"]["status"]) for e in w.events("/ack")]


@pytest.mark.parametrize("retained", [False, True], ids=["live", "retained"])
async def test_document_published_before_the_subscribe_is_in(
    broker: Broker, tmp_path: Path, retained: bool
) -> None:
    w = Watcher.of(broker)
    async with held_agent(broker, tmp_path / "state") as (agent, gate):
        await wait_until(lambda: w.on(f"grid/v1/{DEV}/state") != [], what="birth")
        # Connected, birth out, SUBSCRIBE not taken: not ready.
        assert agent.link.session is not None and not agent.link.ready
        w.publish(MODE_TOPIC, KEY.doc("mode", {"mode": "holiday"}, ver=1), retain=retained)
        await wait_until(lambda: bool(w.on(MODE_TOPIC)), what="document at the broker")
        gate.release()
        await wait_until(lambda: agent.link.ready, what="SUBACK")
        await wait_until(lambda: w.on(f"grid/v1/{DEV}/reported") != [], what="reported")
        # From here a live document reaches the device.
        w.publish(MODE_TOPIC, KEY.doc("mode", {"mode": "major_event"}, ver=2))
        await wait_until(lambda: (2, "applied") in mode_acks(w), what="ack of ver 2")
    # A retained document is delivered on the new subscription; a live one reached nobody.
    assert mode_acks(w) == ([(1, "applied"), (2, "applied")] if retained else [(2, "applied")])
    reported = json.loads(w.on(f"grid/v1/{DEV}/reported")[-1])
    assert reported["mode"]["name"] == "major_event"
    w.close()


async def test_reported_waits_for_the_suback_after_the_role_is_up(
    broker: Broker, tmp_path: Path
) -> None:
    """The role's start publishes `reported` when a session is up: not before the SUBACK.

    The gate holds every packet behind the SUBSCRIBE, so the order is read from the count: one
    `reported` (after the SUBACK) before the one for the mode switch, whatever ran meanwhile.
    """
    w = Watcher.of(broker)
    async with held_agent(broker, tmp_path / "state") as (agent, gate):
        await wait_until(lambda: agent.role is not None, what="role up")
        agent.publish_reported(force=True)
        assert not agent.link.ready
        gate.release()
        await wait_until(lambda: w.on(f"grid/v1/{DEV}/reported") != [], what="reported")
        w.publish(MODE_TOPIC, KEY.doc("mode", {"mode": "holiday"}, ver=1))
        await wait_until(lambda: modes(w)[-1:] == ["holiday"], what="reported holiday")
    assert modes(w) == ["normal", "holiday"]
    w.close()


def modes(w: Watcher) -> list[str]:
    return [json.loads(p)["mode"]["name"] for p in w.on(f"grid/v1/{DEV}/reported")]
