"""Pure central-side check of a device's stream: dedupe, seq gaps, check-in hash chain, media.

The capture is read (parsed, deduplicated, chunks filed) by `agent/ops/streamparse.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.ops.streamparse import (
    Finding,
    Findings,
    Received,
    StoredMsg,
    as_int,
    fmt_ranges,
    sort_in,
)

__all__ = ["MAX_GAP", "Epoch", "Finding", "Received", "Report", "check"]

MAX_GAP = 1_000_000  # a longer run of missing seqs is reported as one jump


@dataclass(frozen=True, slots=True)
class Epoch:
    """A run of seq numbers; a `state_reset` notice starts a new one at 1 (§3)."""

    start: int
    last: int | None
    messages: int
    reset: bool
    missing: tuple[int, ...]
    explained: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """Everything found in one device's stream."""

    dev: str
    received: int
    unique: int
    duplicates: int
    checkins: int
    media_refs: int
    epochs: tuple[Epoch, ...]
    findings: tuple[Finding, ...]

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Findings that mean loss, alteration or a broken device."""
        return tuple(f for f in self.findings if f.problem)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def missing_seqs(self) -> tuple[int, ...]:
        """Every unexplained missing seq, over all epochs."""
        return tuple(s for e in self.epochs for s in e.missing)

    def codes(self) -> list[str]:
        """Codes of the problems, in order (handy for tests and scripts)."""
        return [f.code for f in self.problems]


def _is_reset(m: StoredMsg) -> bool:
    return m.kind == "notice" and m.body.get("type") == "state_reset"


def _split_epochs(msgs: Sequence[StoredMsg]) -> list[tuple[int, int, bool]]:
    """Arrival-order slices [lo, hi) per epoch, and whether each began with a state reset.

    The reset notice (priority 3) often arrives after the new epoch's first check-ins and acks
    (priority 1), so messages just before it that were created after it move into its epoch.
    Messages of the old life were created before the reset: they stay where they are.
    """
    cuts: list[tuple[int, bool]] = [(0, False)]
    for p, m in enumerate(msgs):
        if not _is_reset(m):
            continue
        lo = cuts[-1][0]
        c = p
        new_seqs = {m.seq}
        while c > lo:
            cand = msgs[c - 1]
            if not cand.created_after(m) or cand.seq in new_seqs:
                break
            new_seqs.add(cand.seq)
            c -= 1
        if c == lo:
            cuts[-1] = (lo, True)
        else:
            cuts.append((c, True))
    bounds = [c for c, _ in cuts] + [len(msgs)]
    return [(bounds[i], bounds[i + 1], cuts[i][1]) for i in range(len(cuts))]


def _evicted(msgs: Iterable[StoredMsg]) -> tuple[set[int], int]:
    """Seqs named by `outbox_evicted` and `message_set_aside` notices (§7; docs/protocol.md
    *Poison messages*), and how many media they dropped."""
    seqs: set[int] = set()
    media = 0
    for m in msgs:
        if m.kind == "notice" and m.body.get("type") == "message_set_aside":
            aside = as_int(m.body.get("seq"))
            if aside is not None:
                seqs.add(aside)
            media += 1 if isinstance(m.body.get("media_id"), str) else 0
            continue
        if m.kind != "notice" or m.body.get("type") != "outbox_evicted":
            continue
        ranges = m.body.get("seq_ranges")
        for r in ranges if isinstance(ranges, list) else []:
            if isinstance(r, list) and len(r) == 2:
                lo, hi = as_int(r[0]), as_int(r[1])
                if lo is not None and hi is not None and 0 <= hi - lo <= MAX_GAP:
                    seqs.update(range(lo, hi + 1))
        kinds = m.body.get("kinds")
        if isinstance(kinds, dict):
            media += as_int(kinds.get("media")) or 0
    return seqs, media


def _check_epoch(msgs: Sequence[StoredMsg], start: int, reset: bool, acc: Findings) -> Epoch:
    by_seq: dict[int, StoredMsg] = {}
    for m in msgs:
        other = by_seq.get(m.seq)
        if other is not None and other.id != m.id:
            acc.problem("seq_reused", f"seq {m.seq} carries two ids: {other.id}, {m.id}", [m.seq])
            continue
        by_seq.setdefault(m.seq, m)
    evicted, _ = _evicted(msgs)
    last = max(by_seq) if by_seq else None
    missing: list[int] = []
    explained: list[int] = []
    below = start - 1
    for s in sorted(x for x in by_seq if x >= start):
        if s - below - 1 > MAX_GAP:
            # Not millions of lost messages but a broken counter: say so, do not list them.
            acc.problem("seq_jump", f"seq jumps from {below} to {s}", [below, s])
        else:
            for gap in range(below + 1, s):
                (explained if gap in evicted else missing).append(gap)
        below = s
    if missing:
        acc.problem("seq_gap", f"seq {fmt_ranges(missing)} never arrived", missing)
    if explained:
        acc.note("gap_explained", f"seq {fmt_ranges(explained)} evicted (notice)", explained)
    _check_chain([by_seq[s] for s in sorted(by_seq) if s >= start], start, acc)
    return Epoch(start, last, len(by_seq), reset, tuple(missing), tuple(explained))


def _check_chain(ordered: Sequence[StoredMsg], start: int, acc: Findings) -> None:
    """Each check-in's `prev` is the SHA-256 of the previous check-in's exact bytes (§4)."""
    known = start == 1  # mid-stream, the first check-in's predecessor is not in the capture
    previous: StoredMsg | None = None
    for m in ordered:
        if m.kind != "checkin":
            continue
        prev = m.body.get("prev")
        if previous is None:
            if known and prev is not None:
                acc.problem(
                    "chain_break",
                    f"first check-in (seq {m.seq}) has prev {str(prev)[:16]}…, expected null",
                    [m.seq],
                    m.id,
                )
        else:
            want = hashlib.sha256(previous.payload).hexdigest()
            if prev != want:
                acc.problem(
                    "chain_break",
                    f"check-in seq {m.seq}: prev does not match check-in seq {previous.seq} "
                    "(a check-in between them is missing, or one of them was altered)",
                    [previous.seq, m.seq],
                    m.id,
                )
        previous = m


def _check_photo(
    mid: str,
    ref: Mapping[str, Any],
    naming: StoredMsg,
    event: Mapping[str, Any] | None,
    got: Mapping[int, bytes],
    acc: Findings,
) -> None:
    """One named photo: its media event, every chunk the event counts, size and digest."""
    if event is None:
        acc.problem(
            "media_event_missing",
            f"media {mid} named by seq {naming.seq}: no media event ({len(got)} chunks seen)",
            [naming.seq],
            mid,
        )
    n = as_int(event.get("chunks")) if event is not None else None
    count = n if n is not None else (max(got) + 1 if got else 0)
    absent = [i for i in range(count) if i not in got]
    if absent:
        acc.problem(
            "media_chunk_missing",
            f"media {mid}: chunk {fmt_ranges(absent)} of {count} missing",
            ref=mid,
        )
        return
    data = b"".join(got[i] for i in range(count))
    digest = hashlib.sha256(data).hexdigest()
    wants = [("ref", ref)] + ([("media event", event)] if event is not None else [])
    for label, source in wants:
        if source.get("sha256") != digest or as_int(source.get("bytes")) != len(data):
            acc.problem(
                "media_mismatch",
                f"media {mid}: chunks give {len(data)} bytes sha256 {digest[:12]}…, the "
                f"{label} says {source.get('bytes')} bytes {str(source.get('sha256'))[:12]}…",
                ref=mid,
            )


def _check_media(
    msgs: Sequence[StoredMsg],
    chunks: Mapping[str, Mapping[int, bytes]],
    evicted_media: int,
    acc: Findings,
) -> int:
    """Every photo named in an event has all its chunks and a matching `media` event (§4)."""
    events: dict[str, Mapping[str, Any]] = {}
    for m in msgs:
        if m.kind == "media" and isinstance(m.body.get("media_id"), str):
            events.setdefault(str(m.body["media_id"]), m.body)
    refs: dict[str, tuple[Mapping[str, Any], StoredMsg]] = {}
    for m in msgs:
        photos = m.body.get("photos")
        for ref in photos if isinstance(photos, list) else []:
            if isinstance(ref, dict) and isinstance(ref.get("media_id"), str):
                refs.setdefault(str(ref["media_id"]), (ref, m))
            else:
                acc.problem("malformed", f"seq {m.seq}: a photos entry is not a media ref", [m.seq])
    budget = evicted_media
    for mid, (ref, naming) in refs.items():
        event, got = events.get(mid), chunks.get(mid, {})
        if event is None and budget > 0 and len(got) == 0:
            budget -= 1
            acc.note("media_evicted", f"media {mid} (seq {naming.seq}) evicted (notice)", ref=mid)
            continue
        _check_photo(mid, ref, naming, event, got, acc)
    for mid in sorted((set(events) | set(chunks)) - set(refs)):
        acc.note("media_unreferenced", f"media {mid} is not named by any received event", ref=mid)
    return len(refs)


def check(dev: str, messages: Iterable[Received], *, from_seq: int | None = 1) -> Report:
    """Check `dev`'s messages in arrival order; `from_seq` None starts at the lowest seq seen."""
    acc = Findings()
    seen: dict[str, bytes] = {}
    unique: list[StoredMsg] = []
    chunks: dict[str, dict[int, bytes]] = {}
    received, duplicates = sort_in(dev, messages, seen, unique, chunks, acc)
    if duplicates:
        acc.note("duplicate", f"{duplicates} harmless duplicate(s) (same id, same bytes)")
    epochs = _epochs(unique, from_seq, acc)
    _, evicted_media = _evicted(unique)
    refs = _check_media(unique, chunks, evicted_media, acc)
    return Report(
        dev=dev,
        received=received,
        unique=len(unique),
        duplicates=duplicates,
        checkins=sum(1 for m in unique if m.kind == "checkin"),
        media_refs=refs,
        epochs=tuple(epochs),
        findings=tuple(acc.findings),
    )


def _epochs(unique: list[StoredMsg], from_seq: int | None, acc: Findings) -> list[Epoch]:
    """Each epoch (seq restarted by a state_reset) checked for gaps from its first seq."""
    epochs: list[Epoch] = []
    for i, (lo, hi, reset) in enumerate(_split_epochs(unique)):
        part = unique[lo:hi]
        if not part and not reset:
            continue
        if reset:
            acc.note("state_reset", f"state_reset: seq restarted at 1 (epoch {i + 1})")
        if reset or i > 0:
            start = 1
        elif from_seq is not None:
            start = from_seq
        else:
            start = min((m.seq for m in part), default=1)
        epochs.append(_check_epoch(part, start, reset, acc))
    return epochs
