"""The §6 verification steps as plain functions: each reason, and the order of the checks."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sync.verify import (
    Context,
    Document,
    Refusal,
    b64url_decode,
    b64url_encode,
    verify,
)
from tests.kits.agents import DEV, OpsKey

KEY = OpsKey("k1")
OTHER = OpsKey("k1")


def ctx(last: int | None = None, now: int | None = 1_000, validators: Any = None) -> Context:
    return Context(
        dev=DEV,
        zones=frozenset({"ruyihu", "ruyihu.cbd"}),
        keys={"k1": KEY.private.public_key()},
        last_ver=lambda typ, target: last,
        now_ms=now,
        validators=validators or {},
    )


def reason(result: Document | Refusal) -> str | None:
    return result.reason if isinstance(result, Refusal) else "ok"


def rewrite(doc: bytes, **changes: Any) -> bytes:
    env = json.loads(doc)
    env.update(changes)
    return json.dumps(env).encode()


def test_valid_document_passes() -> None:
    result = verify("mode", KEY.doc("mode", {"mode": "holiday"}, ver=3), ctx(last=2))
    assert isinstance(result, Document) and result.ver == 3 and result.target.key == f"dev:{DEV}"


def test_size_is_checked_before_parsing() -> None:
    result = verify("mode", b"{" * 262145, ctx())
    assert isinstance(result, Refusal) and (result.reason, result.ref, result.ver) == (
        "too_large",
        None,
        None,
    )


def test_envelope_shape_reasons() -> None:
    good = KEY.doc("mode", {"mode": "holiday"}, ver=1)
    assert reason(verify("mode", rewrite(good, extra=1), ctx())) == "bad_envelope"
    assert reason(verify("mode", rewrite(good, v=2), ctx())) == "bad_envelope"
    assert reason(verify("mode", rewrite(good, alg="rsa"), ctx())) == "bad_envelope"
    assert reason(verify("mode", rewrite(good, sig="!!notbase64"), ctx())) == "bad_envelope"
    assert (
        reason(verify("mode", rewrite(good, sig=b64url_encode(b"x" * 63)), ctx())) == "bad_envelope"
    )
    assert (
        reason(verify("mode", rewrite(good, payload=b64url_encode(b"[1]")), ctx()))
        == "bad_envelope"
    )
    assert reason(verify("mode", b"[]", ctx())) == "bad_envelope"


def test_ref_and_ver_come_from_an_unverified_payload() -> None:
    doc = OTHER.doc("mode", {"mode": "holiday"}, ver=7, doc_id="abc")
    result = verify("mode", doc, ctx())
    assert isinstance(result, Refusal)
    assert (result.reason, result.ref, result.ver) == ("bad_signature", "abc", 7)


def test_order_signature_before_topic_before_target_before_version() -> None:
    # Wrong topic AND wrong target AND old ver, but signed by a stranger: signature first.
    doc = OTHER.doc("tasks", {}, ver=1, target={"dev": "x"})
    assert reason(verify("mode", doc, ctx(last=5))) == "bad_signature"
    doc = KEY.doc("tasks", {}, ver=1, target={"dev": "x"})
    assert reason(verify("mode", doc, ctx(last=5))) == "wrong_topic"
    doc = KEY.doc("mode", {}, ver=1, target={"zone": "ruyihu.other"})
    assert reason(verify("mode", doc, ctx(last=5))) == "wrong_target"
    doc = KEY.doc("mode", {}, ver=1, target={"zone": "ruyihu.cbd"}, exp=10)
    assert reason(verify("mode", doc, ctx(last=5))) == "rollback"
    assert reason(verify("mode", KEY.doc("mode", {}, ver=5, exp=10), ctx(last=5))) is None
    assert verify("mode", KEY.doc("mode", {}, ver=5), ctx(last=5)).status == "duplicate"  # type: ignore[union-attr]
    assert reason(verify("mode", KEY.doc("mode", {}, ver=6, exp=10), ctx(last=5))) == "expired"


def test_unknown_key_and_unknown_time() -> None:
    assert reason(verify("mode", OpsKey("k9").doc("mode", {}, ver=1), ctx())) == "unknown_key"
    # With no time known to be right, exp cannot be judged and the document passes step 5.
    assert reason(verify("mode", KEY.doc("mode", {}, ver=1, exp=10), ctx(now=None))) == "ok"


def test_body_validator_runs_last() -> None:
    def no(body: Any) -> Any:
        raise ValueError("bad body")

    result = verify("mode", KEY.doc("mode", {}, ver=1), ctx(validators={"mode": no}))
    assert isinstance(result, Refusal) and result.reason == "invalid_body"
    assert "bad body" in result.detail


@given(st.binary(max_size=600))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert isinstance(verify("cmd", raw, ctx()), Refusal)


SIGNED = KEY.doc("mode", {"mode": "holiday"}, ver=2)


def _decoded(doc: bytes) -> tuple[bytes, bytes]:
    env = json.loads(doc)
    return b64url_decode(env["payload"]), b64url_decode(env["sig"])


@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_refused(pos: int, value: int) -> None:
    doc = bytearray(SIGNED)
    i = pos % len(doc)
    if doc[i] == value:
        return
    doc[i] = value
    result = verify("mode", bytes(doc), ctx())
    # Only a change that decodes to the very same signed bytes (base64 slack bits) may pass.
    assert isinstance(result, Refusal) or _decoded(bytes(doc)) == _decoded(SIGNED)


def test_b64url_round_trip() -> None:
    assert b64url_decode(b64url_encode(b"\xff\x00abc")) == b"\xff\x00abc"
    assert b64url_decode("YQ==") == b"a"


def test_ref_and_ver_come_from_the_payload_whatever_else_is_wrong() -> None:
    good = KEY.doc("mode", {"mode": "holiday"}, ver=7, doc_id="abc")
    for broken in (
        rewrite(good, v=2),
        rewrite(good, v=True),
        rewrite(good, kid=5),
        rewrite(good, alg=None),
        rewrite(good, sig=7),
        rewrite(good, extra=1),
        rewrite(good, sig="!!notbase64"),
        rewrite(good, alg="rsa"),
    ):
        result = verify("mode", broken, ctx())
        assert isinstance(result, Refusal) and result.reason == "bad_envelope"
        assert (result.ref, result.ver) == ("abc", 7), broken[:60]
    # A field of the wrong type in the payload itself: what does parse is still reported.
    env = json.loads(good)
    payload = json.loads(b64url_decode(env["payload"]))
    payload["ver"] = "7"
    env["payload"] = b64url_encode(json.dumps(payload).encode())
    result = verify("mode", json.dumps(env).encode(), ctx())
    assert isinstance(result, Refusal) and result.reason == "bad_envelope"
    assert (result.ref, result.ver) == ("abc", None)
    # Nothing parses: null.
    unparsed = verify("mode", rewrite(good, payload="!!"), ctx())
    assert isinstance(unparsed, Refusal) and (unparsed.ref, unparsed.ver) == (None, None)


def test_a_body_that_is_not_an_object_is_invalid_body() -> None:
    for typ in ("config", "tasks", "mode", "cmd"):
        for body in ([1], "x", None, 5):
            result = verify(typ, KEY.doc(typ, body, ver=3, doc_id="d"), ctx())  # type: ignore[arg-type]
            assert isinstance(result, Refusal)
            assert (result.reason, result.ref, result.ver) == ("invalid_body", "d", 3)
    # Still after the signature (step 2) and the version (step 4).
    assert reason(verify("mode", OTHER.doc("mode", [1], ver=3), ctx())) == "bad_signature"  # type: ignore[arg-type]
    assert reason(verify("mode", KEY.doc("mode", [1], ver=3), ctx(last=5))) == "rollback"  # type: ignore[arg-type]
