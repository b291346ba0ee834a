"""Delivery news for the page: which of its incidents and SOS the broker has (docs/companion.md).

The outbox deletes a message once the broker acknowledged it and tells `on_acked` listeners
the seqs; `Deliveries` follows the few messages the page sent, so the page can say "sent"
instead of "saved, will send when online" once that happened, by its event stream (`sent`)
and in `/api/state` (a phone that missed the event still learns it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from agent.errors import StoreError

TRACKED = 32  # the page's own incidents/SOS whose delivery it follows (newest kept)


class Acked(Protocol):
    """The outbox as delivery news comes from it (sync.outbox.Outbox)."""

    async def holds(self, seq: int) -> bool: ...
    def on_acked(self, listener: Callable[[list[int]], None]) -> None: ...


class Deliveries:
    """Follows up to TRACKED seqs; `publish` hears {"type": "sent", "seq": n} once each."""

    def __init__(self, outbox: Acked, publish: Callable[[dict[str, Any]], None]) -> None:
        self._outbox, self._publish = outbox, publish
        self._seqs: dict[int, bool] = {}  # seq -> delivered
        outbox.on_acked(self._acked)

    async def follow(self, seq: int) -> bool:
        """Follow `seq` until the broker has it; whether it has it already."""
        self._seqs[seq] = False
        while len(self._seqs) > TRACKED:
            del self._seqs[next(iter(self._seqs))]
        try:
            waiting = await self._outbox.holds(seq)
        except StoreError:
            waiting = True  # cannot tell now: the event stream tells later
        if not waiting:
            self._seqs[seq] = True  # acknowledged before it was followed
        return self._seqs.get(seq, False)

    def sent(self) -> list[int]:
        """The followed seqs the broker has, oldest first."""
        return sorted(seq for seq, done in self._seqs.items() if done)

    def _acked(self, seqs: list[int]) -> None:
        for seq in seqs:
            if self._seqs.get(seq) is False:
                self._seqs[seq] = True
                self._publish({"type": "sent", "seq": seq})
