"""Keeps the effective work mode current: applies mode documents and re-resolves on expiry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent.documents.state import DocState
from agent.modes import EffectiveMode, ModeDoc, next_expiry, resolve
from firmware_bridge.aio import Spawn, spawn_task

log = logging.getLogger(__name__)


class ModeControl:
    """`async with` runs the expiry timer; `listeners` hear every change of the effective mode."""

    def __init__(
        self,
        state: DocState,
        *,
        default: Callable[[], str],
        now_ms: Callable[[], int | None],
        targets: Callable[[], set[str]],
        spawn: Spawn = spawn_task,
    ) -> None:
        self._spawn = spawn
        self._state = state
        self._default = default
        self._now_ms = now_ms
        self._targets = targets
        self.listeners: list[Callable[[EffectiveMode], None]] = []
        self.current = self._resolve()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ModeControl:
        self._task = self._spawn("mode-expiry", self._expiry_loop)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _docs(self) -> list[ModeDoc]:
        # Only documents for targets the device follows now (zones may change with config).
        wanted = self._targets()
        return [d for d in self._state.mode_docs.values() if d.target in wanted]

    def _resolve(self) -> EffectiveMode:
        return resolve(self._docs(), self._now_ms(), self._default())

    def apply(self, doc: ModeDoc) -> None:
        """Store an applied mode document and re-resolve at once."""
        self._state.set_mode_doc(doc)
        self.refresh()

    def refresh(self) -> None:
        """Re-resolve; tell listeners when the effective mode changed."""
        new = self._resolve()
        self._changed.set()
        if new != self.current:
            log.info("work mode %s -> %s (%s)", self.current.name, new.name, new.scope)
            self.current = new
            for listener in self.listeners:
                listener(new)

    async def _expiry_loop(self) -> None:
        while True:
            self._changed.clear()
            now = self._now_ms()
            nxt = next_expiry(self._docs(), now) if now is not None else None
            # Capped, so a wall clock that jumps (NTP, GPS) is noticed within a minute.
            timeout = 60.0 if nxt is None or now is None else min(60.0, max(0.0, (nxt - now) / 1e3))
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                self.refresh()
                self._changed.clear()
