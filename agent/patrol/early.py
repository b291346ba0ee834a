"""Early photos: a photo checkpoint's photo is taken while the dwell runs, not after the decision.

A GPS check-in at a checkpoint with `photo:true` must name its photo (SHA-256 in the body), so
taking the photo after the deciding fix puts a camera capture between that fix and the outbox
commit. Instead, as soon as the engine reports a confirmed dwell run there (the person is at the
checkpoint), one photo is taken and kept for that (task, checkpoint); the check-in picks it up.
A photo whose run ends without a check-in is never named by an event; the media reaper deletes
it with the other orphans. See docs/patrol.md "Photos".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (task id, checkpoint id)
Refs = list[dict[str, Any]]  # media refs, [] when the photo failed


@dataclass(frozen=True, slots=True)
class _Ready:
    refs: Refs
    taken_mono_ms: int


class EarlyPhotos:
    """Takes at most one early photo per wanted (task, checkpoint) and hands it to its check-in."""

    def __init__(
        self,
        *,
        take: Callable[[], Awaitable[Refs]],
        mono_ms: Callable[[], int],
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        max_age_s: float,
    ) -> None:
        self._take = take
        self._mono_ms = mono_ms
        self._spawn = spawn
        self._max_age_ms = int(max_age_s * 1000)
        self._ready: dict[Key, _Ready] = {}
        self._busy: dict[Key, asyncio.Task[Refs]] = {}
        self.stats = {"taken": 0, "failed": 0, "used": 0, "unused": 0}

    def want(self, keys: Collection[Key]) -> None:
        """The checkpoints with a confirmed run now: start their photos, forget the others.

        One attempt per run: a failed one is remembered (as no photo) until the run ends, so a
        broken camera or a full store costs one capture, not one per fix. A photo grown older
        than max_age_s is taken again.
        """
        now = self._mono_ms()
        for key in list(self._ready):
            ready = self._ready[key]
            stale = ready.refs and now - ready.taken_mono_ms > self._max_age_ms
            if key not in keys or stale:
                del self._ready[key]
                self.stats["unused"] += bool(ready.refs)
        for key in keys:
            if key in self._ready or key in self._busy:
                continue
            task = self._spawn(self._shoot(key), f"early-photo:{key[1]}")
            self._busy[key] = task

    async def _shoot(self, key: Key) -> Refs:
        try:
            refs = await self._take()
        finally:
            self._busy.pop(key, None)
        self.stats["taken" if refs else "failed"] += 1
        self._ready[key] = _Ready(refs, self._mono_ms())
        return refs

    def media_ids(self) -> set[str]:
        """Photos taken early and not yet claimed: the media reaper must keep them."""
        return {str(ref["media_id"]) for r in self._ready.values() for ref in r.refs}

    async def claim(self, key: Key) -> Refs:
        """The photo taken early for key (waiting for one being taken), or [] if there is none."""
        busy = self._busy.get(key)
        if busy is not None:
            # wait(), not await: a check-in cancelled here leaves the capture running.
            await asyncio.wait([busy])
        ready = self._ready.pop(key, None)
        if ready is None or self._mono_ms() - ready.taken_mono_ms > self._max_age_ms:
            return []
        self.stats["used"] += 1
        return ready.refs
