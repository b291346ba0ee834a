"""Pure builders for the grid/v1 upstream messages (contract §3, §5, §8); no I/O."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PREFIX = "grid/v1"
MAX_UP_PAYLOAD = 131072  # contract §1: every payload the device publishes
MAX_CHUNK = 65536  # contract §2: media chunk size


@dataclass(frozen=True, slots=True)
class TimeStamp:
    """The §3 time fields of one message at its creation."""

    ts: int
    ts_src: str
    time_ok: bool
    boot: str
    mono_ms: int


_RAND_BITS = 0x0FFF << 64 | 0x3FFF_FFFF_FFFF_FFFF  # rand_a, rand_b
_VERSION_VARIANT = 0x7 << 76 | 0b10 << 62


def uuid7(unix_ms: int, rand: bytes | None = None) -> str:
    """Return a UUIDv7 string for `unix_ms` (RFC 9562), 74 random bits from `rand` or os.urandom."""
    r = rand if rand is not None else os.urandom(10)
    if len(r) < 10:
        raise ValueError("uuid7 needs 10 random bytes")
    # The 80 random bits keep 12 (rand_a) + 62 (rand_b); version and variant take the rest.
    bits = int.from_bytes(r[:10], "big") & _RAND_BITS
    h = f"{(unix_ms & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_VARIANT | bits:032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# One encoder for every payload (json.dumps would build a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON without BOM, the one serialisation every published payload uses."""
    return _ENCODER.encode(obj).encode()


def topic(dev: str, *parts: str) -> str:
    """Return `grid/v1/<dev>/<parts...>`."""
    return "/".join((PREFIX, dev, *parts))


def event_topic(dev: str, kind: str) -> str:
    """Topic of a stored message: `evt/{kind}`, or `ack` for acks."""
    return topic(dev, "ack") if kind == "ack" else topic(dev, "evt", kind)


def envelope(
    *,
    kind: str,
    msg_id: str,
    dev: str,
    seq: int,
    stamp: TimeStamp,
    hist: bool,
    body: Mapping[str, Any],
) -> bytes:
    """Serialise one §3 envelope; these bytes are stored and republished unchanged.

    The same bytes as `dumps` of the envelope dict (tests/unit/sync/test_envelope.py), built
    around the body's encoding: the outbox writes one per message, and the fields around the
    body are a fixed shape (field types other than the declared ones take the dict way).
    """
    if type(seq) is int and type(hist) is bool and type(kind) is str and type(dev) is str:
        head = _head(stamp)
        if head is not None and type(msg_id) is str:
            return (
                f'{{"v":1,"kind":{_STR(kind)},"id":{_STR(msg_id)},"dev":{_STR(dev)},"seq":{seq}'
                f'{head},"hist":{"true" if hist else "false"},"body":'
                f"{_ENCODER.encode(body if type(body) is dict else dict(body))}}}"
            ).encode()
    return dumps(
        {
            "v": 1,
            "kind": kind,
            "id": msg_id,
            "dev": dev,
            "seq": seq,
            "boot": stamp.boot,
            "mono_ms": stamp.mono_ms,
            "ts": stamp.ts,
            "ts_src": stamp.ts_src,
            "time_ok": stamp.time_ok,
            "hist": hist,
            "body": dict(body),
        }
    )


_STR = json.encoder.encode_basestring  # what _ENCODER does with a str (ensure_ascii=False)


def _head(s: TimeStamp) -> str | None:
    """The time fields as `envelope` writes them; None when a field is not of its type."""
    if not (type(s.mono_ms) is int and type(s.ts) is int and type(s.time_ok) is bool):
        return None
    if not (type(s.boot) is str and type(s.ts_src) is str):
        return None
    return _head_text(s)


# Keyed by equality, so only for stamps whose types `_head` checked (1 == True, 1 == 1.0).
@functools.lru_cache(maxsize=4)  # one stamp serves a whole group commit
def _head_text(s: TimeStamp) -> str:
    ok = "true" if s.time_ok else "false"
    return (
        f',"boot":{_STR(s.boot)},"mono_ms":{s.mono_ms},"ts":{s.ts},'
        f'"ts_src":{_STR(s.ts_src)},"time_ok":{ok}'
    )


def birth(
    *,
    bdseq: int,
    boot: str,
    ts: int,
    agent: str,
    role: str,
    config_ver: int | None,
    tasks_ver: int | None,
    mode: str,
    zones: list[str] | None = None,
) -> bytes:
    """The §5 birth payload; `zones` (proposed, docs/protocol.md) lets central target fleets."""
    body: dict[str, Any] = {
        "v": 1,
        "online": True,
        "bdseq": bdseq,
        "boot": boot,
        "ts": ts,
        "agent": agent,
        "role": role,
        "config_ver": config_ver,
        "tasks_ver": tasks_ver,
        "mode": mode,
    }
    if zones is not None:
        body["zones"] = zones
    return dumps(body)


def offline(
    bdseq: int, reason: str, *, role: str | None = None, zones: Sequence[str] | None = None
) -> bytes:
    """The §5 will (`lost`) or graceful-stop (`shutdown`) payload.

    `role` and `zones` (2026-12-07b) let central address an offline fleet by role or zone.
    """
    body: dict[str, Any] = {"v": 1, "online": False, "bdseq": bdseq, "reason": reason}
    if role is not None:
        body["role"] = role
        body["zones"] = list(zones or [])
    return dumps(body)


def reported(
    *,
    config_ver: int | None,
    tasks_ver: int | None,
    mode: Mapping[str, Any],
    ts: int,
    problems: Sequence[str] = (),
    progress: Mapping[str, int] | None = None,
) -> bytes:
    """The §6 retained `reported` payload; `progress` (docs/protocol.md) only when given."""
    body: dict[str, Any] = {
        "v": 1,
        "config_ver": config_ver,
        "tasks_ver": tasks_ver,
        "mode": dict(mode),
        "ts": ts,
        "problems": list(problems),
    }
    if progress is not None:
        body["progress"] = dict(progress)
    return dumps(body)


def ack_body(
    *,
    ref: str | None,
    typ: str,
    ver: int | None,
    status: str,
    reason: str | None,
    detail: str | None = None,
) -> dict[str, Any]:
    """The §6 ack body; `detail` (proposed, docs/protocol.md) says what failed, when known."""
    body: dict[str, Any] = {"ref": ref, "typ": typ, "ver": ver, "status": status, "reason": reason}
    if detail:
        body["detail"] = detail[:300]  # an ack is priority 1: keep it small
    return body
