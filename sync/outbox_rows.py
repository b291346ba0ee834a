"""Outbox rows: an append or a deletion waiting for the writer, an append's exact stored bytes,
the publisher's Row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sync import envelope
from sync.envelope import TimeStamp
from sync.errors import StoreError
from sync.messages import Stored

MAX_PRIORITY = 127  # the priority is the top bits of the rowid (sync/outbox_schema.py)
ROW_OVERHEAD = 64  # bytes counted per row on top of topic + payload


@dataclass(frozen=True, slots=True)
class Row:
    """One stored message as the publisher sees it."""

    rowid: int
    priority: int
    topic: str
    payload: bytes
    size: int
    hist: bool
    group: str | None = None  # media id of a chunk or `media` event


@dataclass(slots=True)
class Pending:
    """One append queued for the writer; its future gets the Stored once committed."""

    kind: str
    priority: int
    hist: bool
    body: Mapping[str, Any] | None  # envelope body; None for a raw (chunk) row
    topic: str
    payload: bytes | None  # raw rows only
    group: str | None
    future: asyncio.Future[Stored] | None  # None: added by the writer itself
    journal: bool = False  # also into the journal table, in the same transaction
    drop: tuple[int, ...] = ()  # rows deleted in the same transaction (a set-aside notice)
    drop_group: str | None = None  # ... and every row of this media group


@dataclass(slots=True)
class Deletion:
    """PUBACKed rows to delete, or a journal release mark (up to seq, seq kept), in the next
    write transaction; `future` (when someone waits) is set once it commits."""

    rowids: tuple[int, ...]
    future: asyncio.Future[None] | None
    at_once: bool = False  # commit without waiting for an append to carry it
    release: tuple[int, int | None] | None = None


def build(
    item: Pending, *, dev: str, seq: int, stamp: Callable[[], TimeStamp]
) -> tuple[Stored, int]:
    """The item's exact bytes (an envelope with `seq`, or raw) and its counted size.

    Raises StoreError for a message that cannot be published (not JSON, over 128 KiB).
    """
    if not 0 <= item.priority <= MAX_PRIORITY:
        raise StoreError(f"{item.kind}: priority {item.priority} outside 0..{MAX_PRIORITY}")
    if item.body is None:
        assert item.payload is not None
        stored = Stored(item.group or "", 0, item.topic, item.payload, item.priority)
    else:
        now = stamp()
        msg_id = envelope.uuid7(now.ts)
        try:
            payload = envelope.envelope(
                kind=item.kind,
                msg_id=msg_id,
                dev=dev,
                seq=seq,
                stamp=now,
                hist=item.hist,
                body=item.body,
            )
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{item.kind} body is not JSON: {exc}") from None
        stored = Stored(msg_id, seq, item.topic, payload, item.priority)
    if len(stored.payload) > envelope.MAX_UP_PAYLOAD:
        raise StoreError(f"{item.kind} payload of {len(stored.payload)} bytes exceeds 128 KiB")
    return stored, len(stored.payload) + len(stored.topic) + ROW_OVERHEAD


def answer_deletions(items: list[Pending | Deletion]) -> None:
    """Tell whoever waits for these deletions that their transaction committed."""
    for item in items:
        if isinstance(item, Deletion) and item.future is not None and not item.future.done():
            item.future.set_result(None)


def cancelled(item: Pending) -> bool:
    """Whether the caller of this append stopped waiting."""
    return item.future is not None and item.future.cancelled()


def fail(item: Pending | Deletion, exc: StoreError) -> None:
    """Answer the item's caller with `exc` (if someone still waits)."""
    if item.future is not None and not item.future.done():
        item.future.set_exception(exc)
