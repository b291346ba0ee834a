"""Pure central-side check of a device's stream: dedupe, seq gaps, check-in hash chain, media."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sync.envelope import MAX_CHUNK, PREFIX

MAX_GAP = 1_000_000  # a longer run of missing seqs is reported as one jump


@dataclass(frozen=True, slots=True)
class Received:
    """One message as central received it: topic and exact payload bytes."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Finding:
    """One result; `problem` False means a note (harmless or explained)."""

    code: str
    problem: bool
    message: str
    seqs: tuple[int, ...] = ()
    ref: str | None = None  # message id or media id


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


@dataclass(frozen=True, slots=True)
class _Msg:
    """A parsed, deduplicated stored message (`evt/*` or `ack`)."""

    id: str
    seq: int
    kind: str
    body: Mapping[str, Any]
    payload: bytes
    boot: str | None  # §3 creation time: boot id, ms since that boot, wall clock
    mono_ms: int | None
    ts: int | None
    time_ok: bool

    def created_after(self, other: _Msg) -> bool:
        """Surely created no earlier than `other`: same boot by mono_ms, else by trusted ts."""
        if self.boot is not None and self.boot == other.boot:
            return (
                self.mono_ms is not None
                and other.mono_ms is not None
                and (self.mono_ms >= other.mono_ms)
            )
        if not (self.time_ok and other.time_ok):
            return False  # a wall clock not known to be right orders nothing
        return self.ts is not None and other.ts is not None and self.ts >= other.ts


@dataclass(slots=True)
class _Acc:
    findings: list[Finding] = field(default_factory=list)

    def problem(
        self, code: str, message: str, seqs: Iterable[int] = (), ref: str | None = None
    ) -> None:
        self.findings.append(Finding(code, True, message, tuple(seqs), ref))

    def note(
        self, code: str, message: str, seqs: Iterable[int] = (), ref: str | None = None
    ) -> None:
        self.findings.append(Finding(code, False, message, tuple(seqs), ref))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def _fmt_ranges(seqs: Iterable[int]) -> str:
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in _ranges(seqs))


def _parse_stored(rest: str, payload: bytes, dev: str, acc: _Acc) -> _Msg | None:
    kind_from_topic = "ack" if rest == "ack" else rest.removeprefix("evt/")
    try:
        env = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        acc.problem("malformed", f"{rest}: payload is not UTF-8 JSON ({len(payload)} bytes)")
        return None
    if not isinstance(env, dict):
        acc.problem("malformed", f"{rest}: payload is not a JSON object")
        return None
    msg_id, seq, kind, body = env.get("id"), _int(env.get("seq")), env.get("kind"), env.get("body")
    if not isinstance(msg_id, str) or seq is None or not isinstance(kind, str):
        acc.problem("malformed", f"{rest}: envelope lacks a string id, integer seq or kind")
        return None
    if not isinstance(body, dict):
        acc.problem("malformed", f"{rest}: seq {seq} has no body object", [seq], msg_id)
        return None
    if env.get("dev") != dev:
        acc.problem("wrong_device", f"seq {seq} says dev {env.get('dev')!r}", [seq], msg_id)
    if kind != kind_from_topic:
        acc.problem("wrong_topic", f"seq {seq} is a {kind!r} on {rest}", [seq], msg_id)
    boot = env.get("boot") if isinstance(env.get("boot"), str) else None
    mono_ms, ts, time_ok = _int(env.get("mono_ms")), _int(env.get("ts")), env.get("time_ok")
    return _Msg(msg_id, seq, kind, body, payload, boot, mono_ms, ts, time_ok is True)


def _is_reset(m: _Msg) -> bool:
    return m.kind == "notice" and m.body.get("type") == "state_reset"


def _split_epochs(msgs: Sequence[_Msg]) -> list[tuple[int, int, bool]]:
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


def _evicted(msgs: Iterable[_Msg]) -> tuple[set[int], int]:
    """Seqs named by `outbox_evicted` and `message_set_aside` notices (§7; docs/protocol.md
    *Poison messages*), and how many media they dropped."""
    seqs: set[int] = set()
    media = 0
    for m in msgs:
        if m.kind == "notice" and m.body.get("type") == "message_set_aside":
            aside = _int(m.body.get("seq"))
            if aside is not None:
                seqs.add(aside)
            media += 1 if isinstance(m.body.get("media_id"), str) else 0
            continue
        if m.kind != "notice" or m.body.get("type") != "outbox_evicted":
            continue
        ranges = m.body.get("seq_ranges")
        for r in ranges if isinstance(ranges, list) else []:
            if isinstance(r, list) and len(r) == 2:
                lo, hi = _int(r[0]), _int(r[1])
                if lo is not None and hi is not None and 0 <= hi - lo <= MAX_GAP:
                    seqs.update(range(lo, hi + 1))
        kinds = m.body.get("kinds")
        if isinstance(kinds, dict):
            media += _int(kinds.get("media")) or 0
    return seqs, media


def _check_epoch(msgs: Sequence[_Msg], start: int, reset: bool, acc: _Acc) -> Epoch:
    by_seq: dict[int, _Msg] = {}
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
        acc.problem("seq_gap", f"seq {_fmt_ranges(missing)} never arrived", missing)
    if explained:
        acc.note("gap_explained", f"seq {_fmt_ranges(explained)} evicted (notice)", explained)
    _check_chain([by_seq[s] for s in sorted(by_seq) if s >= start], start, acc)
    return Epoch(start, last, len(by_seq), reset, tuple(missing), tuple(explained))


def _check_chain(ordered: Sequence[_Msg], start: int, acc: _Acc) -> None:
    """Each check-in's `prev` is the SHA-256 of the previous check-in's exact bytes (§4)."""
    known = start == 1  # mid-stream, the first check-in's predecessor is not in the capture
    previous: _Msg | None = None
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
    naming: _Msg,
    event: Mapping[str, Any] | None,
    got: Mapping[int, bytes],
    acc: _Acc,
) -> None:
    """One named photo: its media event, every chunk the event counts, size and digest."""
    if event is None:
        acc.problem(
            "media_event_missing",
            f"media {mid} named by seq {naming.seq}: no media event ({len(got)} chunks seen)",
            [naming.seq],
            mid,
        )
    n = _int(event.get("chunks")) if event is not None else None
    count = n if n is not None else (max(got) + 1 if got else 0)
    absent = [i for i in range(count) if i not in got]
    if absent:
        acc.problem(
            "media_chunk_missing",
            f"media {mid}: chunk {_fmt_ranges(absent)} of {count} missing",
            ref=mid,
        )
        return
    data = b"".join(got[i] for i in range(count))
    digest = hashlib.sha256(data).hexdigest()
    wants = [("ref", ref)] + ([("media event", event)] if event is not None else [])
    for label, source in wants:
        if source.get("sha256") != digest or _int(source.get("bytes")) != len(data):
            acc.problem(
                "media_mismatch",
                f"media {mid}: chunks give {len(data)} bytes sha256 {digest[:12]}…, the "
                f"{label} says {source.get('bytes')} bytes {str(source.get('sha256'))[:12]}…",
                ref=mid,
            )


def _check_media(
    msgs: Sequence[_Msg], chunks: Mapping[str, Mapping[int, bytes]], evicted_media: int, acc: _Acc
) -> int:
    """Every photo named in an event has all its chunks and a matching `media` event (§4)."""
    events: dict[str, Mapping[str, Any]] = {}
    for m in msgs:
        if m.kind == "media" and isinstance(m.body.get("media_id"), str):
            events.setdefault(str(m.body["media_id"]), m.body)
    refs: dict[str, tuple[Mapping[str, Any], _Msg]] = {}
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
    acc = _Acc()
    seen: dict[str, bytes] = {}
    unique: list[_Msg] = []
    chunks: dict[str, dict[int, bytes]] = {}
    received, duplicates = _sort_in(dev, messages, seen, unique, chunks, acc)
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


def _chunk(rest: str, payload: bytes, chunks: dict[str, dict[int, bytes]], acc: _Acc) -> None:
    parts = rest.split("/")
    n = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else None
    if n is None or not parts[1]:
        acc.problem("malformed", f"{rest}: not media/{{media_id}}/{{n}}")
        return
    mid = parts[1]
    if len(payload) > MAX_CHUNK:
        acc.problem("chunk_too_large", f"{rest}: {len(payload)} bytes > {MAX_CHUNK}", ref=mid)
    have = chunks.setdefault(mid, {})
    if n in have and have[n] != payload:
        acc.problem("media_chunk_conflict", f"{rest} arrived twice with different bytes", ref=mid)
        return
    have.setdefault(n, payload)


def _sort_in(
    dev: str,
    messages: Iterable[Received],
    seen: dict[str, bytes],
    unique: list[_Msg],
    chunks: dict[str, dict[int, bytes]],
    acc: _Acc,
) -> tuple[int, int]:
    """Stored messages and chunks of `dev` into `unique`/`chunks`; (received, duplicates)."""
    prefix = f"{PREFIX}/{dev}/"
    received = duplicates = 0
    for msg in messages:
        if not msg.topic.startswith(prefix):
            continue
        rest = msg.topic[len(prefix) :]
        if rest.startswith("media/"):
            received += 1
            _chunk(rest, msg.payload, chunks, acc)
            continue
        if not (rest == "ack" or (rest.startswith("evt/") and rest.count("/") == 1)):
            continue  # state, reported, status and documents are not stored messages
        received += 1
        parsed = _parse_stored(rest, msg.payload, dev, acc)
        if parsed is None:
            continue
        first = seen.get(parsed.id)
        if first is None:
            seen[parsed.id] = msg.payload
            unique.append(parsed)
        elif first == msg.payload:
            duplicates += 1  # a republish after a lost PUBACK: same bytes, harmless
        else:
            acc.problem(
                "conflicting_duplicate",
                f"id {parsed.id} arrived twice with different bytes (seq {parsed.seq})",
                [parsed.seq],
                parsed.id,
            )
    return received, duplicates


def _epochs(unique: list[_Msg], from_seq: int | None, acc: _Acc) -> list[Epoch]:
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
