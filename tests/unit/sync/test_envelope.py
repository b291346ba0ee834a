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
