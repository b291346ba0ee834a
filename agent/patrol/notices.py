"""Fan-out of patrol happenings (check-ins) to listeners such as the companion page's SSE."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


class Notices:
    """Each listener gets its own bounded queue; a listener that falls behind loses the oldest."""

    def __init__(self, *, maxsize: int = 32) -> None:
        self._maxsize = maxsize
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def publish(self, notice: dict[str, Any]) -> None:
        """Hand `notice` to every listener now; never blocks, never raises."""
        for q in self._queues:
            if q.full():
                q.get_nowait()  # a stalled phone must not hold the patrol up
            q.put_nowait(notice)

    @contextmanager
    def listen(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        """A queue that receives every notice published while the block runs."""
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._maxsize)
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)

    def __len__(self) -> int:
        return len(self._queues)
