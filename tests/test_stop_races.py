"""A stop that arrives as a loop wakes up must still stop it (issue 18 point 9).

The 20-agent fleet test (tests/test_ops_fleet_converge.py) found agents that never stopped,
or never came back from a config restart: the session worker was cancelled in the same loop
turn as its wake-up, Python 3.11's `asyncio.wait_for` returned the wake-up and dropped the
cancellation, and the worker waited for ever. The order of wake-up and cancel is varied here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sync.publisher import Publisher, _InFlight


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
        inflight = {1: _InFlight(None, asyncio.get_running_loop().time())}  # type: ignore[arg-type]
        task = asyncio.create_task(pub._idle(inflight, None))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        box.callback(2)  # a new row wakes the publisher ...
        for _ in range(steps):
            await asyncio.sleep(0)
        took = task.cancel()  # ... and the agent stops, `steps` loop turns later
        await cancelled_or_done(task, took)
