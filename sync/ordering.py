"""Pure store-and-forward rules (contract §7): eviction choice and its notice body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.messages import PROTECTED


@dataclass(frozen=True, slots=True)
class RowInfo:
    """What eviction needs to know about one stored row."""

    rowid: int
    priority: int
    size: int
    kind: str
    seq: int | None
    group: str | None = None  # media id: a photo's chunks and its `media` event go together


def eviction_order_key(row: RowInfo) -> tuple[int, int]:
    """Lowest priority (highest number) first, then oldest."""
    return (-row.priority, row.rowid)


def choose_evictions(candidates: Iterable[RowInfo], need_bytes: int) -> list[RowInfo]:
    """Pick rows to free at least `need_bytes`: lowest priority, oldest first; never 0-1.

    A row of a media group takes the rest of its group along (a photo is useless in part).
    Returns what to drop, possibly freeing less than asked when nothing more may go.
    """
    if need_bytes <= 0:
        return []
    rows = sorted((r for r in candidates if r.priority > PROTECTED), key=eviction_order_key)
    by_group: dict[str, list[RowInfo]] = {}
    for r in rows:
        if r.group is not None:
            by_group.setdefault(r.group, []).append(r)
    chosen: dict[int, RowInfo] = {}
    freed = 0
    for r in rows:
        if freed >= need_bytes:
            break
        if r.rowid in chosen:
            continue
        for member in by_group.get(r.group, [r]) if r.group is not None else [r]:
            if member.rowid not in chosen:
                chosen[member.rowid] = member
                freed += member.size
    return sorted(chosen.values(), key=lambda r: r.rowid)


def seq_ranges(seqs: Iterable[int]) -> list[list[int]]:
    """Compress seq numbers into sorted inclusive [from, to] ranges."""
    out: list[list[int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def eviction_notice(
    evicted: Sequence[RowInfo], earlier: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The §4 `outbox_evicted` notice body for dropped rows.

    `earlier` are bodies of evicted `outbox_evicted` notices: their news is carried over, so
    every seq gap stays explained even when a notice itself had to go.
    """
    kinds: dict[str, int] = {}
    seqs: set[int] = set()
    total = 0
    for body in earlier:
        for kind, n in dict(body.get("kinds", {})).items():
            kinds[str(kind)] = kinds.get(str(kind), 0) + int(n)
        for lo, hi in body.get("seq_ranges", []):
            seqs.update(range(int(lo), int(hi) + 1))
        total += int(body.get("bytes", 0))
    for r in evicted:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if r.seq is not None:
            seqs.add(r.seq)
        total += r.size
    return {
        "type": "outbox_evicted",
        "kinds": kinds,
        "seq_ranges": seq_ranges(seqs),
        "bytes": total,
    }
