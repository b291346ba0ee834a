"""The one owner of every long-running loop: names, restarts with backoff, crash reports, health.

Components do not call `asyncio.create_task` for their loops; they are handed `spawn` (the
lower layers take it as a plain callable). A loop that raises is logged with its traceback,
counted, shown in `status()` and restarted after a jittered, capped backoff. A loop that keeps
failing within `stable_s` of each start `max_restarts` times, or one spawned with
`restart=False`, is fatal: `on_fatal` stops the agent with a non-zero exit so systemd restarts
the whole process. A loop spawned with `essential=False` (one camera's) is given up instead:
its task ends with the last exception for its owner, it stays `failed` in `problems()`, and the
agent and its health run on.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from firmware_bridge.aio import Backoff, Sleep

log = logging.getLogger(__name__)

Factory = Callable[[], Coroutine[Any, Any, Any]]


@dataclass(slots=True)
class _Loop:
    # Mutable on purpose: the supervisor's own bookkeeping, read through status().
    name: str
    restart: bool
    essential: bool = True
    task: asyncio.Task[None] | None = None
    state: str = "running"  # running | restarting | failed | ended | stopped
    restarts: int = 0
    last_error: str | None = None


class Supervisor:
    """Runs named loops for the agent's lifetime; `async with` cancels them all on the way out."""

    def __init__(
        self,
        *,
        on_fatal: Callable[[str, BaseException], None],
        backoff: Backoff | None = None,
        max_restarts: int = 5,
        stable_s: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        mono: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._on_fatal = on_fatal
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._max_restarts = max_restarts
        self._stable_s = stable_s
        self._sleep = sleep
        self._mono = mono
        self._rng = rng or random.Random()
        self._loops: dict[str, _Loop] = {}
        self._closing = False

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing = True
        tasks = [lp.task for lp in reversed(self._loops.values()) if lp.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def spawn(
        self, name: str, factory: Factory, *, restart: bool = True, essential: bool = True
    ) -> asyncio.Task[None]:
        """Run `factory()` as loop `name` (unique: a second one gets a numbered name)."""
        unique, n = name, 1
        while unique in self._loops and self._loops[unique].state in ("running", "restarting"):
            n += 1
            unique = f"{name}#{n}"
        loop = _Loop(unique, restart, essential)
        self._loops[unique] = loop
        loop.task = asyncio.create_task(self._run(loop, factory), name=unique)
        return loop.task

    async def _run(self, loop: _Loop, factory: Factory) -> None:
        quick_failures = 0
        while True:
            started = self._mono()
            loop.state = "running"
            try:
                await factory()
            except asyncio.CancelledError:
                loop.state = "stopped"
                raise
            except Exception as exc:  # the supervisor's broad catch: any bug in any loop
                loop.last_error = f"{type(exc).__name__}: {exc}"
                log.error("loop %s crashed", loop.name, exc_info=exc)
                quick_failures = 0 if self._mono() - started >= self._stable_s else quick_failures
                quick_failures += 1
                if not loop.restart or quick_failures > self._max_restarts:
                    loop.state = "failed"
                    if not loop.essential:
                        log.error("loop %s given up; the agent runs on without it", loop.name)
                        raise  # for the loop's owner (a camera marks itself failed)
                    if not self._closing:
                        log.critical("loop %s cannot be restarted; stopping the agent", loop.name)
                        self._on_fatal(loop.name, exc)
                    return
                loop.state = "restarting"
                loop.restarts += 1
                delay = self._backoff.delay(quick_failures - 1, self._rng)
                log.warning("restarting loop %s in %.1f s", loop.name, delay)
                await self._sleep(delay)
                continue
            loop.state = "ended"
            return

    def healthy(self) -> bool:
        """True while no loop has failed for good (the systemd watchdog feeds on this)."""
        return all(lp.state != "failed" or not lp.essential for lp in self._loops.values())

    def problems(self) -> dict[str, str]:
        """Loops that crashed and have not run cleanly since (`loop NAME` -> why), for health."""
        return {
            f"loop {lp.name}": f"{lp.state}: {lp.last_error}"
            for lp in self._loops.values()
            if lp.state in ("failed", "restarting")
        }

    def status(self) -> dict[str, Any]:
        """Loops running, restarts, and state + last error of each loop that ever failed."""
        troubled = {
            lp.name: {"state": lp.state, "restarts": lp.restarts, "last_error": lp.last_error}
            for lp in self._loops.values()
            if lp.last_error is not None
        }
        running = sum(1 for lp in self._loops.values() if lp.state == "running")
        return {"running": running, "restarts": self.restarts, "troubled": troubled}

    @property
    def restarts(self) -> int:
        """Restarts of all loops since the agent started."""
        return sum(lp.restarts for lp in self._loops.values())

    def names(self) -> list[str]:
        """Names of the loops running now (tests and status)."""
        return [lp.name for lp in self._loops.values() if lp.state == "running"]
