"""Stops at awkward moments, found by the 20-agent fleet test (issue 18 point 9).

A stop that arrives as a loop wakes up must still stop it.

The 20-agent fleet test (tests/system/ops/test_ops_fleet_converge.py) found agents that
never stopped, or never came back from a config restart: the session worker was cancelled in
the same loop turn as its wake-up, Python 3.11's `asyncio.wait_for` returned the wake-up and
dropped the cancellation, and the worker waited for ever. The order of wake-up and cancel is
varied here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from agent.modes import validate_mode_body
from sync.downlink import Downlink, Trust
from sync.outbox_rows import Row
from sync.publisher import Publisher
from sync.session import Inbound
from sync.window import Window
from tests.kits.agents import DEV, OpsKey


class _Outbox:
    """Only what the publisher's constructor touches: a subscription for new rows."""

    def subscribe(self, callback: Callable[[int], None]) -> None:
        self.callback = callback


async def cancelled_or_done(task: asyncio.Task[Any], cancel_took: bool) -> None:
    done, _ = await asyncio.wait([task], timeout=5)  # a bound, not a figure
    assert done, "the task is still running after its cancellation"
    if cancel_took:  # cancel() reached a running task: it must end cancelled, not carry on
        assert task.cancelled()


async def test_publisher_wait_ends_when_cancelled_as_it_wakes() -> None:
    for steps in range(8):
        box = _Outbox()
        pub = Publisher(box, window=10, low_share=0.8, puback_timeout_s=3600)  # type: ignore[arg-type]
        # Something in flight: the wait has a timeout (the PUBACK deadline), wait_for's path.
        win = Window(10, 8, acked=lambda row: None, refused=lambda row: None, wake=lambda: None)
        row = Row(rowid=1, priority=1, topic="t", payload=b"", size=0, hist=False)
        win.add(1, row, asyncio.get_running_loop().time())
        task = asyncio.create_task(pub._idle(win, None))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        box.callback(2)  # a new row wakes the publisher ...
        for _ in range(steps):
            await asyncio.sleep(0)
        took = task.cancel()  # ... and the agent stops, `steps` loop turns later
        await cancelled_or_done(task, took)


class _Versions:
    """The state dir's per-document memory, in memory."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[int, str]] = {}

    def last_ver(self, typ: str, target: str) -> int | None:
        got = self.docs.get((typ, target))
        return got[0] if got else None

    def last_id(self, typ: str, target: str) -> str | None:
        got = self.docs.get((typ, target))
        return got[1] if got else None

    def applied(self, typ: str, target: str, ver: int, doc_id: str) -> None:
        self.docs[(typ, target)] = (ver, doc_id)


async def test_a_document_applied_just_before_a_stop_is_acked_applied() -> None:
    # Found by the fleet test: an agent restarted mid-push had stored the new version, not yet
    # its ack; the broker redelivered the document (no PUBACK) and the tool got `duplicate`.
    key = OpsKey("ops-a")
    stored: list[dict[str, object]] = []

    class StoppedAfterRecording(_Versions):
        stop = True

        def applied(self, typ: str, target: str, ver: int, doc_id: str) -> None:
            super().applied(typ, target, ver, doc_id)
            if self.stop:  # the stop lands as the version is written
                self.stop = False
                raise asyncio.CancelledError

    async def store_ack(body: dict[str, object]) -> None:
        stored.append(body)

    async def apply(doc: object) -> None:
        return None

    downlink = Downlink(
        trust=lambda: Trust(DEV, frozenset(), {key.kid: key.private.public_key()}),
        versions=StoppedAfterRecording(),
        now_ms=lambda: None,
        validators={"mode": validate_mode_body},
        appliers={"mode": apply},
        store_ack=store_ack,
        on_applied=lambda: None,
        on_central=lambda online: None,
    )
    doc = key.doc("mode", {"mode": "holiday", "reason": "x"}, ver=5, doc_id="doc-5")
    topic = f"grid/v1/{DEV}/desired/mode"
    with contextlib.suppress(asyncio.CancelledError):
        await downlink.handle(Inbound(topic, doc, retained=False, mid=1, qos=1))
    # No PUBACK went out: the broker delivers it again to the restarted agent.
    await downlink.handle(Inbound(topic, doc, retained=False, mid=1, qos=1))
    # The tool takes a device's first ack for its document: it must say `applied`.
    assert stored and (stored[0]["status"], stored[0]["ref"]) == ("applied", "doc-5")
