"""Delivering alerts to webhooks: an async context manager owning one named worker per sink.

`submit` journals an alert once by key (a duplicate is dropped there) and queues it for every
sink; each sink's worker posts it, retrying failures with the project's jittered capped
`Backoff` until `max_attempts`, and journals every attempt and the outcome. Queues are bounded:
a sink that is down long enough makes `submit` wait instead of growing memory. On entry, alerts
of the last `resume_s` that have no outcome for a sink (the service stopped mid-delivery) are
queued again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import aiohttp

from agent.lang import Lang
from agent.ops.alerts import formats
from agent.ops.alerts.formats import Sink
from agent.ops.alerts.journal import Journal
from agent.ops.alerts.rules import Alert, text
from firmware_bridge.aio import Backoff, Sleep, Spawn, Uniform, cancel_task, spawn_task

log = logging.getLogger(__name__)


_BACKOFF = Backoff(1.0, 60.0)  # a webhook down for minutes is retried about once a minute


def _now_ms() -> int:
    return int(time.time() * 1000)


class Deliverer:
    """Posts each alert once per sink (retries until delivered or `max_attempts`)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        journal: Journal,
        lang: Lang,
        *,
        backoff: Backoff = _BACKOFF,
        max_attempts: int = 12,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        resume_s: float = 3600.0,
        rng: Uniform | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], int] = _now_ms,
        spawn: Spawn = spawn_task,
    ) -> None:
        self._sinks = tuple(sinks)
        self._journal, self._lang = journal, lang
        self._backoff, self._max_attempts = backoff, max_attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._rng: Uniform = rng or random.Random()
        self._sleep, self._clock, self._spawn = sleep, clock, spawn
        self._resume_ms = int(resume_s * 1000)
        self._queues = {s.name: asyncio.Queue[Alert](queue_size) for s in self._sinks}
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Deliverer:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        since = self._clock() - self._resume_ms
        for sink in self._sinks:
            q = self._queues[sink.name]
            pending = await asyncio.to_thread(self._journal.pending, sink.name, since)
            for alert in pending[: q.maxsize]:
                q.put_nowait(alert)
            if len(pending) > q.maxsize:
                log.warning(
                    "%d older alerts for %s left undelivered", len(pending) - q.maxsize, sink.name
                )
            self._tasks.append(
                self._spawn(f"alerts-{sink.name}", functools.partial(self._worker, sink))
            )
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            await cancel_task(task)
        if self._session is not None:
            await self._session.close()

    async def submit(self, alert: Alert) -> bool:
        """Journal and queue a new alert; False (nothing sent) when its key was seen before."""
        words = text(alert, self._lang)
        if not await asyncio.to_thread(self._journal.claim, alert, words, self._clock()):
            log.debug("alert %s already raised", alert.key)
            return False
        log.info("alert %s: %s", alert.key, words)
        for sink in self._sinks:
            await self._queues[sink.name].put(alert)
        return True

    async def drain(self) -> None:
        """Wait until every queued alert has an outcome (delivered or given up)."""
        for q in self._queues.values():
            await q.join()

    async def _worker(self, sink: Sink) -> None:
        q = self._queues[sink.name]
        while True:
            alert = await q.get()
            try:
                await self._deliver(sink, alert)
            finally:
                q.task_done()

    async def _deliver(self, sink: Sink, alert: Alert) -> None:
        for n in range(1, self._max_attempts + 1):
            ok, detail = await self._post(sink, alert)
            await asyncio.to_thread(
                self._journal.attempt, alert.key, sink.name, n, ok, detail, self._clock()
            )
            if ok:
                await asyncio.to_thread(
                    self._journal.outcome, alert.key, sink.name, "delivered", self._clock()
                )
                return
            log.warning("alert %s to %s: attempt %d failed (%s)", alert.key, sink.name, n, detail)
            if n < self._max_attempts:
                await self._sleep(self._backoff.delay(n - 1, self._rng))
        log.error("alert %s to %s: gave up after %d attempts", alert.key, sink.name, n)
        await asyncio.to_thread(
            self._journal.outcome, alert.key, sink.name, "gave_up", self._clock()
        )

    async def _post(self, sink: Sink, alert: Alert) -> tuple[bool, str]:
        if self._session is None:
            raise RuntimeError("Deliverer used outside `async with`")
        body = formats.body(sink.kind, alert, self._lang)
        try:
            async with self._session.post(formats.url(sink, self._clock()), json=body) as resp:
                return formats.accepted(sink.kind, resp.status, await resp.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return False, f"{type(exc).__name__}: {exc}"[:300]
