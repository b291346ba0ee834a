"""The publisher's two pieces of per-session state: the in-flight window and the scan cursor."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sync.messages import Priority
from sync.outbox_rows import Row

START = (-1, -1)  # before every (priority, rowid)


@dataclass(slots=True)
class _InFlight:
    row: Row
    sent_at: float


class Window:
    """Rows published in one session and not yet PUBACKed, at most `size`, of which at most
    `low_cap` of priority DETECTION or lower; `on_puback` hands each answer to `acked` or
    `refused` (in publish order, as the broker answers), then to `wake`."""

    def __init__(
        self,
        size: int,
        low_cap: int,
        *,
        acked: Callable[[Row], None],
        refused: Callable[[Row], None],
        wake: Callable[[], None],
    ) -> None:
        self.size = size
        self.low_cap = low_cap
        self._acked = acked
        self._refused = refused
        self._wake = wake
        self._rows: dict[int, _InFlight] = {}  # by packet id, oldest first
        self._low = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, mid: int, row: Row, now: float) -> None:
        """`row` went out as packet `mid` at `now`."""
        self._rows[mid] = _InFlight(row, now)
        if row.priority >= Priority.DETECTION:
            self._low += 1

    def on_puback(self, mid: int, ok: bool) -> None:
        """The session's PUBACK callback: `ok` False for a reason code >= 0x80."""
        entry = self._rows.pop(mid, None)
        if entry is None:
            return
        if entry.row.priority >= Priority.DETECTION:
            self._low -= 1
        (self._acked if ok else self._refused)(entry.row)
        self._wake()

    def full_for(self, row: Row) -> bool:
        """Whether `row` must wait for a PUBACK first (window or low-priority share full)."""
        low = row.priority >= Priority.DETECTION and self._low >= self.low_cap
        return len(self._rows) >= self.size or low

    def oldest_sent(self) -> float | None:
        """When the oldest row still waiting went out."""
        return next(iter(self._rows.values())).sent_at if self._rows else None

    def rowids(self) -> set[int]:
        """The rows in flight."""
        return {e.row.rowid for e in self._rows.values()}

    def rows(self) -> list[Row]:
        """The rows in flight, oldest first."""
        return [e.row for e in self._rows.values()]

    def alone(self, rowids: Collection[int]) -> bool:
        """Whether exactly one row is in flight and it is one of `rowids`."""
        return len(self._rows) == 1 and next(iter(self._rows.values())).row.rowid in rowids


class Scan:
    """Where the publisher is in the §7 send order: the cursor (priority, rowid) at or past
    every row buffered, and the rows fetched but not yet sent."""

    def __init__(self) -> None:
        self.cursor = START
        self.buffer: deque[Row] = deque()

    def rewind(self, position: tuple[int, int]) -> None:
        """Scan again from `position` (rows at or before it sort first now)."""
        self.cursor = min(self.cursor, position)
        self.buffer.clear()

    def new_row(self, priority: int) -> None:
        """A row of `priority` was stored: move the scan back if it sorts before the cursor."""
        # The cursor is at or past every buffered row (rows in flight are skipped but passed).
        if self.cursor[0] <= priority:
            return  # the new row sorts after the cursor: the scan will reach it
        if self.buffer:
            self.cursor = (self.buffer[0].priority, self.buffer[0].rowid - 1)
            self.buffer.clear()
        self.cursor = min(self.cursor, (priority, -1))

    def refill(self, rows: list[Row], keep: Callable[[Row], bool]) -> None:
        """Buffer fetched rows (those `keep` accepts); the cursor moves past all of them."""
        self.cursor = (rows[-1].priority, rows[-1].rowid)
        self.buffer.extend(r for r in rows if keep(r))

    def drop_groups(self, groups: Collection[str]) -> None:
        """Forget buffered rows of these photos (set aside: deleted)."""
        if groups:
            self.buffer = deque(r for r in self.buffer if r.group is None or r.group not in groups)
