"""A stop (cancellation) that arrives in the same loop turn as the PUBACK it waits for is not
lost: the graceful offline state's wait ends cancelled, whichever comes first.

A run was once cancelled just as its agent, restarting after a rollback, got the PUBACK of its
graceful offline state: 3.11's `asyncio.wait_for` returned the result and dropped the
cancellation, and the next agent started and ran on (the test hung at its stop).
"""

from __future__ import annotations

import asyncio

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.demo.broker import Broker
from sync.session import Session


@pytest.mark.parametrize("first", ["puback", "cancel"])
async def test_a_cancel_with_the_puback_still_cancels(broker: Broker, first: str) -> None:
    loop = asyncio.get_running_loop()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)  # no network loop: only this test answers
    try:
        session = Session(client, loop, bdseq=1)
        task = asyncio.create_task(session.publish_wait("grid/v1/pd-0042/state", b"{}", timeout=10))
        await asyncio.sleep(0)  # it waits for the PUBACK of mid 1 now
        steps = [lambda: session.puback(1, True), task.cancel]
        for step in steps if first == "puback" else reversed(steps):
            loop.call_soon(step)  # both in the same turn of the loop
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        sock = client.socket()
        client.disconnect()
        if sock is not None:
            sock.close()
