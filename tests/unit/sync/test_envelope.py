"""The envelope's fast shape: exactly the bytes of encoding the envelope dict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync import envelope
from sync.envelope import TimeStamp, dumps

TEXT = st.text(max_size=12)  # control characters, quotes, backslashes, non-ASCII included
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
STAMPS = st.builds(TimeStamp, st.integers(), TEXT, st.booleans(), TEXT, st.integers())


def reference(kind: str, msg_id: str, dev: str, seq: Any, stamp: TimeStamp, hist: Any, body: Any):
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


@given(TEXT, TEXT, TEXT, st.integers(), STAMPS, st.booleans(), st.dictionaries(TEXT, JSON))
def test_envelope_is_the_dict_encoding(
    kind: str, msg_id: str, dev: str, seq: int, stamp: TimeStamp, hist: bool, body: dict
) -> None:
    got = envelope.envelope(
        kind=kind, msg_id=msg_id, dev=dev, seq=seq, stamp=stamp, hist=hist, body=body
    )
    assert got == reference(kind, msg_id, dev, seq, stamp, hist, body)


def test_equal_stamps_of_other_types_are_not_mixed_up() -> None:
    plain = TimeStamp(1, "gps", True, "b", 1)
    odd = TimeStamp(True, "gps", 1, "b", 1.0)  # type: ignore[arg-type]
    assert plain == odd  # equal as values, not as JSON
    for s in (plain, odd, plain, odd):
        got = envelope.envelope(kind="k", msg_id="i", dev="d", seq=1, stamp=s, hist=False, body={})
        assert got == reference("k", "i", "d", 1, s, False, {})


@given(st.sampled_from([True, 1.0, 7]), st.sampled_from([True, 1, 0.0]), STAMPS)
def test_other_field_types_take_the_dict_way(seq: Any, hist: Any, stamp: TimeStamp) -> None:
    odd = TimeStamp(stamp.ts, stamp.ts_src, 1, stamp.boot, True)  # type: ignore[arg-type]
    for s in (stamp, odd):
        got = envelope.envelope(
            kind="k", msg_id="i", dev="d", seq=seq, stamp=s, hist=hist, body={"a": 1}
        )
        assert got == reference("k", "i", "d", seq, s, hist, {"a": 1})


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), object()])
def test_a_body_that_is_not_json_is_refused(bad: Any) -> None:
    stamp = TimeStamp(1, "gps", True, "b", 2)
    with pytest.raises((ValueError, TypeError)):
        envelope.envelope(
            kind="k", msg_id="i", dev="d", seq=1, stamp=stamp, hist=False, body={"x": bad}
        )


def reference_uuid7(unix_ms: int, r: bytes) -> str:
    """RFC 9562's layout spelled out field by field."""
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= (int.from_bytes(r[0:2], "big") & 0x0FFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= int.from_bytes(r[2:10], "big") & 0x3FFF_FFFF_FFFF_FFFF  # rand_b
    h = f"{value:032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@given(st.integers(0, 2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_is_the_rfc_layout(unix_ms: int, rand: bytes) -> None:
    assert envelope.uuid7(unix_ms, rand) == reference_uuid7(unix_ms, rand)
