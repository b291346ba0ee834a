"""Reading a capture for the stream check (`agent/ops/streamcheck.py`): pure, no I/O.

`sort_in` keeps one device's stored messages (`evt/*`, `ack`), parsed and deduplicated by id,
and its media chunks; everything malformed or conflicting becomes a `Finding` on the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sync.envelope import MAX_CHUNK, PREFIX


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
class StoredMsg:
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

    def created_after(self, other: StoredMsg) -> bool:
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
class Findings:
    """The findings of one check, in the order found: problems and notes."""

    findings: list[Finding] = field(default_factory=list)

    def problem(
        self, code: str, message: str, seqs: Iterable[int] = (), ref: str | None = None
    ) -> None:
        self.findings.append(Finding(code, True, message, tuple(seqs), ref))

    def note(
        self, code: str, message: str, seqs: Iterable[int] = (), ref: str | None = None
    ) -> None:
        self.findings.append(Finding(code, False, message, tuple(seqs), ref))


def as_int(value: object) -> int | None:
    """`value` if it is a JSON integer (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def fmt_ranges(seqs: Iterable[int]) -> str:
    """Seqs as sorted ranges for people: `3, 5-9`."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in _ranges(seqs))


def _parse_stored(rest: str, payload: bytes, dev: str, acc: Findings) -> StoredMsg | None:
    """One stored message on topic tail `rest`; None (and a `malformed` problem) if unusable."""
    kind_from_topic = "ack" if rest == "ack" else rest.removeprefix("evt/")
    try:
        env = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        acc.problem("malformed", f"{rest}: payload is not UTF-8 JSON ({len(payload)} bytes)")
        return None
    if not isinstance(env, dict):
        acc.problem("malformed", f"{rest}: payload is not a JSON object")
        return None
    msg_id, seq, kind = env.get("id"), as_int(env.get("seq")), env.get("kind")
    body = env.get("body")
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
    mono_ms, ts, time_ok = as_int(env.get("mono_ms")), as_int(env.get("ts")), env.get("time_ok")
    return StoredMsg(msg_id, seq, kind, body, payload, boot, mono_ms, ts, time_ok is True)


def _chunk(rest: str, payload: bytes, chunks: dict[str, dict[int, bytes]], acc: Findings) -> None:
    """File chunk `media/{media_id}/{n}` into `chunks`; the first bytes of a chunk are kept."""
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


def sort_in(
    dev: str,
    messages: Iterable[Received],
    seen: dict[str, bytes],
    unique: list[StoredMsg],
    chunks: dict[str, dict[int, bytes]],
    acc: Findings,
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
