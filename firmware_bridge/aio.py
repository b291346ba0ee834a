"""The one copy of what every long-lived part needs: sleep type, task cancel, boot clock, backoff.

`Backoff` is pure (no clock, no sleep): the caller counts attempts and sleeps with its own
injected `sleep`. The agent hands the same class to the MQTT link (sync/ takes it as a
parameter, since the layers do not import each other).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

Sleep = Callable[[float], Awaitable[None]]


def boottime_ms() -> int:
    """Milliseconds since boot, counting suspend (CLOCK_BOOTTIME): the contract's `mono_ms`."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * 1000)


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task we own and wait for it; our own cancellation still propagates."""
    if task is None:
        return
    task.cancel()  # no-op when it already finished; a crash inside it re-raises below
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


class Uniform(Protocol):
    """A source of jitter: `random.Random` or anything with its `uniform`."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with equal jitter: uniform(c/2, c), c = min(cap, base*2**n)."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, attempt: int, rng: Uniform) -> float:
        """Delay before retry number `attempt` (0 = first retry after a success)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** min(attempt, 30)))
        # Jitter spreads the retries of many devices after a shared outage; half the ceiling
        # stays fixed so the delay keeps growing while the failures go on.
        return rng.uniform(ceiling / 2, ceiling)


Factory = Callable[[], Coroutine[Any, Any, Any]]
Spawn = Callable[[str, Factory], "asyncio.Task[Any]"]


def spawn_task(name: str, factory: Factory) -> asyncio.Task[Any]:
    """The default `Spawn`: a plain named task, no restarts (standalone use and tests).

    The agent passes its supervisor's spawn instead, which restarts a crashed loop.
    """
    return asyncio.create_task(factory(), name=name)
