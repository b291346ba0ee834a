"""What an archived message becomes: pure functions from (topic, payload) to table rows.

No I/O and no clock: the archiver passes the time it received the message. Every message maps
to exactly one row whose key makes a redelivery or a republish the same row (§3: central
dedupes on `id`; state and reported on their exact bytes; a chunk on its topic).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "grid/v1"
DEV_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
EVENT_KINDS = frozenset({"checkin", "incident", "patrol", "alarm", "detection", "media", "notice"})
MAX_CHUNK = 65536

# The subscriptions that cover every archived message (status and downlink left out).
TOPICS = (
    f"{PREFIX}/+/evt/+",
    f"{PREFIX}/+/ack",
    f"{PREFIX}/+/state",
    f"{PREFIX}/+/reported",
    f"{PREFIX}/+/media/+/+",
)


@dataclass(frozen=True, slots=True)
class EventRow:
    """An `evt/*` message or an `ack` (table events)."""

    dev: str
    id: str
    kind: str
    seq: int | None
    boot: str | None
    ts: int | None
    time_ok: bool | None
    hist: bool | None
    received_ms: int
    payload: str


@dataclass(frozen=True, slots=True)
class MediaRow:
    """The photo a `media` event names (table media), written with its EventRow."""

    dev: str
    media_id: str
    event_id: str
    sha256: str
    bytes: int
    chunks: int
    mime: str | None
    ref_kind: str | None
    ref_id: str | None


@dataclass(frozen=True, slots=True)
class StateRow:
    """A `state` or `reported` message (tables states / reported), keyed by its digest."""

    table: str  # "states" or "reported"
    dev: str
    digest: str
    a: int | bool | None  # states: online; reported: config_ver
    b: int | None  # states: bdseq; reported: tasks_ver
    ts: int | None
    received_ms: int
    payload: str


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """Raw bytes of chunk `n` of a photo (table media_chunks)."""

    dev: str
    media_id: str
    n: int
    data: bytes
    received_ms: int


@dataclass(frozen=True, slots=True)
class RejectRow:
    """A message on an archived topic that is not grid/v1 (table rejects)."""

    digest: str
    topic: str
    reason: str
    received_ms: int
    payload: bytes


Row = EventRow | MediaRow | StateRow | ChunkRow | RejectRow
Rows = tuple[Row, ...]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _bool(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _reject(topic: str, payload: bytes, reason: str, now: int) -> Rows:
    digest = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()
    return (RejectRow(digest, topic, reason, now, payload),)


def _json_object(payload: bytes) -> tuple[str, dict[str, Any]] | str:
    """(text, object) or the reason it is not a JSON object."""
    try:
        text = payload.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return "not UTF-8 JSON"
    if not isinstance(data, dict):
        return "not a JSON object"
    return text, data


def _media_row(dev: str, event_id: str, body: dict[str, Any]) -> MediaRow | str:
    media_id, sha = body.get("media_id"), body.get("sha256")
    size, chunks = _int(body.get("bytes")), _int(body.get("chunks"))
    if not (isinstance(media_id, str) and isinstance(sha, str)):
        return "media event without media_id/sha256"
    if size is None or chunks is None or not 0 < chunks <= 4096:
        return "media event without a valid bytes/chunks"
    raw_ref = body.get("ref")
    ref: dict[str, Any] = raw_ref if isinstance(raw_ref, dict) else {}
    mime = _str(body.get("mime"))
    return MediaRow(
        dev, media_id, event_id, sha.lower(), size, chunks, mime,
        _str(ref.get("kind")), _str(ref.get("id")),
    )  # fmt: skip


def _event(dev: str, kind: str, payload: bytes, now: int, topic: str) -> Rows:
    parsed = _json_object(payload)
    if isinstance(parsed, str):
        return _reject(topic, payload, parsed, now)
    text, env = parsed
    eid = env.get("id")
    if not isinstance(eid, str) or not eid or len(eid) > 64:
        return _reject(topic, payload, "envelope without id", now)
    g = env.get
    row = EventRow(
        dev, eid, kind, _int(g("seq")), _str(g("boot")), _int(g("ts")), _bool(g("time_ok")),
        _bool(g("hist")), now, text,
    )  # fmt: skip
    if kind != "media":
        return (row,)
    body = env.get("body")
    media = _media_row(dev, eid, body) if isinstance(body, dict) else "media event without body"
    if isinstance(media, str):
        return (row, *_reject(topic, payload, media, now))
    return (row, media)


def _state(table: str, dev: str, payload: bytes, now: int, topic: str) -> Rows:
    if not payload:
        return ()  # an empty retained message clears the topic; nothing to archive
    parsed = _json_object(payload)
    if isinstance(parsed, str):
        return _reject(topic, payload, parsed, now)
    text, data = parsed
    digest = hashlib.sha256(payload).hexdigest()
    a: int | bool | None
    if table == "states":
        a, b = _bool(data.get("online")), _int(data.get("bdseq"))
    else:
        a, b = _int(data.get("config_ver")), _int(data.get("tasks_ver"))
    return (StateRow(table, dev, digest, a, b, _int(data.get("ts")), now, text),)


def rows_for(topic: str, payload: bytes, received_ms: int) -> Rows:
    """The rows one message becomes; () for a message the archive does not keep (status)."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != PREFIX:
        return ()
    dev, what = parts[2], parts[3:]
    if dev in ("zone", "central"):
        return ()
    if not DEV_RE.fullmatch(dev):
        return _reject(topic, payload, "bad device id", received_ms)
    match what:
        case ["evt", kind] if kind in EVENT_KINDS:
            return _event(dev, kind, payload, received_ms, topic)
        case ["ack"]:
            return _event(dev, "ack", payload, received_ms, topic)
        case ["state"]:
            return _state("states", dev, payload, received_ms, topic)
        case ["reported"]:
            return _state("reported", dev, payload, received_ms, topic)
        case ["media", media_id, n] if n.isdigit() and len(n) < 5:
            if len(payload) > MAX_CHUNK or not media_id or len(media_id) > 64:
                return _reject(topic, payload, "chunk too large or bad media id", received_ms)
            return (ChunkRow(dev, media_id, int(n), payload, received_ms),)
        case ["status"] | ["doctor"] | ["desired", *_] | ["cmd"]:
            return ()
    return _reject(topic, payload, "unknown topic", received_ms)


def assemble(chunks: Sequence[bytes], sha256: str, size: int) -> bytes | None:
    """The photo's bytes when the chunks join to `size` bytes with SHA-256 `sha256`, else None."""
    data = b"".join(chunks)
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256.lower():
        return None
    return data
