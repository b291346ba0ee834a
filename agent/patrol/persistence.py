"""What the patrol driver keeps in state_dir/patrol.json, its repair from the outbox, views.

The file holds the engine snapshot (docs/checkin.md §9), the check-in hash chain head (the
SHA-256 and seq of the last stored check-in), the events the outbox refused so far
(agent/patrol/unsent.py) and `journal_seq`, the last seq the driver had stored. It is
rewritten (atomically, fsynced) after every batch of events, so it can only lag the outbox,
never lead it. The driver stores its events with a copy in the outbox's journal, which
outlives their PUBACK and is released up to `journal_seq` once this file is written. After a
crash between an outbox commit and that rewrite, the journal's check-ins beyond the saved seq
are found by `committed_checkins` and `recover` moves the head and the engine's progress onto
them, even when the check-in has been published and deleted from the outbox meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.patrol.core import CheckinParams, PatrolEngine, parse_tasks_body
from sync.messages import PROTECTED
from sync.outbox import Outbox
from sync.statefile import read_json, write_json

log = logging.getLogger(__name__)

STATE_FILE = "patrol.json"
STATE_VERSION = 1
JOURNALLED = ("checkin", "patrol")  # the kinds the driver stores with a journal copy
_PAGE = 512


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last stored check-in: SHA-256 hex of its exact payload bytes, and its seq."""

    head: str | None = None
    seq: int | None = None

    @staticmethod
    def of(payload: bytes, seq: int) -> ChainHead:
        """The head after storing a check-in with these bytes."""
        return ChainHead(hashlib.sha256(payload).hexdigest(), seq)

    def to_json(self) -> dict[str, Any]:
        """JSON form for the state file."""
        return {"head": self.head, "seq": self.seq}

    @staticmethod
    def from_json(data: object) -> ChainHead:
        """Parse the state file's form; a damaged one gives an empty head (logged)."""
        if not isinstance(data, Mapping):
            return ChainHead()
        head, seq = data.get("head"), data.get("seq")
        if (head is None or (isinstance(head, str) and len(head) == 64)) and (
            seq is None or (isinstance(seq, int) and not isinstance(seq, bool))
        ):
            return ChainHead(head, seq)
        log.error("patrol state: chain head %r is malformed; starting a new chain", data)
        return ChainHead()


@dataclass(frozen=True, slots=True)
class Committed:
    """An event found in the journal or outbox: its seq, payload bytes and decoded envelope."""

    seq: int
    payload: bytes
    message: dict[str, Any]


def engine_from(
    saved: Mapping[str, Any], record: Mapping[str, Any] | None, params: CheckinParams
) -> PatrolEngine:
    """The engine of patrol.json's snapshot; else a fresh one on the stored task set (logged)."""
    engine = PatrolEngine(params=params)
    if "engine" in saved:  # absent on a first start
        try:
            engine.restore(saved["engine"])
            return engine
        except ConfigError as exc:
            log.error("patrol state unusable (%s); progress starts afresh", exc)
    if record is None:
        return engine
    # With the stored task set in place, check-ins found in the journal can be marked done.
    try:
        return PatrolEngine(parse_tasks_body(record.get("body")), params)
    except ConfigError as exc:
        log.error("stored tasks ver %s not usable: %s", record.get("ver"), exc)
        return engine


def state_doc(
    engine: Mapping[str, Any],
    chain: ChainHead,
    tasks: Mapping[str, Any] | None,
    unsent: list[dict[str, Any]] | None = None,
    journal_seq: int | None = None,
) -> dict[str, Any]:
    """The patrol.json document."""
    return {
        "v": STATE_VERSION,
        "engine": dict(engine),
        "chain": chain.to_json(),
        "tasks": dict(tasks) if tasks is not None else None,
        "unsent": list(unsent or []),
        "journal_seq": journal_seq,
    }


# The engine's record of where the last fixes were: the outlier gate and the fix-time order,
# and in each task's progress the time each checkpoint was last seen from outside.
_POSITION = ("gate", "order")
_PROGRESS_POSITION = ("out_at",)


def without_position(doc: Mapping[str, Any]) -> str:
    """patrol.json document `doc` as canonical JSON, less the gate, the fix-time order and
    the checkpoints' outside times.

    Two documents with the same text differ only in where the last fixes were. Such a change
    alone is not worth a write to flash (a standing device would rewrite the file every save
    interval): an agent restarted from an older gate re-anchors it after `reanchor_n` mutually
    consistent fixes and accepts them, so nothing is lost by waiting for the next real change.
    """
    engine = doc.get("engine")
    if isinstance(engine, Mapping):
        kept = {k: v for k, v in engine.items() if k not in _POSITION}
        if isinstance(kept.get("progress"), Mapping):
            kept["progress"] = {
                task: _without(pr, _PROGRESS_POSITION) for task, pr in kept["progress"].items()
            }
        doc = {**doc, "engine": kept}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _without(value: Any, keys: tuple[str, ...]) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {k: v for k, v in value.items() if k not in keys}


class StateFile:
    """state_dir/patrol.json on disk: read once at start, rewritten atomically (fsynced).

    It remembers what the file holds less the position (`without_position`) and when it was
    last written, so that a periodic save can be skipped when only the last fix moved.
    """

    def __init__(self, state_dir: Path, mono_ms: Callable[[], int]) -> None:
        self.path = state_dir / STATE_FILE
        self._mono_ms = mono_ms
        self._text: str | None = None  # what the file holds, less the position
        self._saved_at = 0  # mono ms of the last write (or skipped periodic write)

    async def read(self) -> dict[str, Any]:
        """The saved document; {} when there is none or it is not a JSON object."""
        saved = await asyncio.to_thread(read_json, self.path, None)
        saved = saved if isinstance(saved, dict) else {}
        self._text = without_position(saved) if saved else None
        return saved

    def due(self, interval_s: float) -> bool:
        """Whether the last write is at least `interval_s` old."""
        return self._mono_ms() - self._saved_at >= interval_s * 1000

    async def write(self, doc: Mapping[str, Any], *, periodic: bool = False) -> bool:
        """Write `doc` and return True; OSError when the disk refused it (the file is unchanged).

        A periodic write is skipped (False) when only the last fix's position moved: an idle
        device would rewrite the file every save interval. The caller keeps its state dirty
        then, so the next event's save or the one at exit writes it.
        """
        text = without_position(doc)
        if periodic and text == self._text:
            self._saved_at = self._mono_ms()
            return False
        await asyncio.to_thread(write_json, self.path, doc)
        self._text = text
        self._saved_at = self._mono_ms()
        return True


def journal_seq(saved: Mapping[str, Any], chain: ChainHead) -> int | None:
    """The saved `journal_seq`; the chain's seq for a file without one (or a damaged one)."""
    seq = saved.get("journal_seq", chain.seq)
    if seq is None or (type(seq) is int and (chain.seq is None or seq >= chain.seq)):
        return seq
    log.error("patrol state: journal_seq %r is malformed; using the chain's", seq)
    return chain.seq


async def committed_checkins(
    outbox: Outbox, after_seq: int | None, *, scan_outbox: bool = False
) -> list[Committed]:
    """Journalled check-ins with seq > after_seq (all when None), in seq order.

    `scan_outbox` (patrol.json lost: the journal was released against it) adds the
    check-ins still waiting in the outbox, the slow way: every row is read.
    """
    found: dict[int, Committed] = {}
    for entry in await outbox.journal_after(after_seq, "checkin"):
        c = _committed(entry.payload, f"journal seq {entry.seq}")
        if c is not None:
            found[c.seq] = c
    if scan_outbox:
        for c in await _outbox_checkins(outbox, after_seq):
            found.setdefault(c.seq, c)
    return [found[seq] for seq in sorted(found)]


async def stored_since(outbox: Outbox, after_seq: int | None) -> list[Committed]:
    """The driver's journalled events with seq > after_seq (all when None), in seq order."""
    found: list[Committed] = []
    for kind in JOURNALLED:
        for entry in await outbox.journal_after(after_seq, kind):
            c = _committed(entry.payload, f"journal seq {entry.seq}")
            if c is not None:
                found.append(c)
    return sorted(found, key=lambda c: c.seq)


def _committed(payload: bytes, where: str) -> Committed | None:
    try:
        msg = json.loads(payload)
        return Committed(int(msg["seq"]), payload, msg)
    except (ValueError, KeyError, TypeError) as exc:
        log.error("unreadable event (%s): %s", where, exc)
        return None


async def _outbox_checkins(outbox: Outbox, after_seq: int | None) -> list[Committed]:
    """Check-ins still in the outbox with seq > after_seq (all when None), in seq order."""
    found: list[Committed] = []
    cursor = (-1, -1)
    while True:
        rows = await outbox.fetch(cursor, _PAGE)
        for row in rows:
            if row.priority > PROTECTED:
                # Check-ins are priority 1 and rows come in (priority, rowid) order: done.
                return sorted(found, key=lambda c: c.seq)
            if not row.topic.endswith("/evt/checkin"):
                continue
            c = _committed(row.payload, f"outbox row {row.rowid}")
            if c is not None and (after_seq is None or c.seq > after_seq):
                found.append(c)
        if len(rows) < _PAGE:
            return sorted(found, key=lambda c: c.seq)
        cursor = (rows[-1].priority, rows[-1].rowid)


def replay_progress(engine: PatrolEngine, events: list[Committed]) -> bool:
    """Apply journalled `patrol` events (stored after the last save) to the engine."""
    applied = sum(
        engine.apply_stored("patrol", c.message.get("body", {}), int(c.message.get("ts", 0)))
        for c in events
    )
    if applied:
        log.warning("re-applied %d progress event(s) stored after the last state save", applied)
    return applied > 0


def recover(chain: ChainHead, engine: PatrolEngine, committed: list[Committed]) -> ChainHead:
    """The chain head after `committed` check-ins (beyond the saved head), applied to `engine`."""
    if not committed:
        return chain
    for c in committed:
        # A check-in for a task set replaced since has nothing to mark: apply_stored says so.
        engine.apply_stored("checkin", c.message.get("body", {}), int(c.message.get("ts", 0)))
    last = committed[-1]
    if chain.head is not None and committed[0].message.get("body", {}).get("prev") != chain.head:
        log.error("check-in seq %d does not follow the saved chain head", committed[0].seq)
    log.warning(
        "recovered %d check-in(s) stored after the last state save (up to seq %d)",
        len(committed),
        last.seq,
    )
    return ChainHead.of(last.payload, last.seq)
