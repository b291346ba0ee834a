"""Pure broker-limit and poison-message decisions (sync.limits, sync.poison)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.limits import MAX_CHUNK, MIN_CHUNK, BrokerLimits, publish_size, split
from sync.poison import RetryPolicy, Strikes, Verdict, aside_notice, oversize

PREFIX = "grid/v1/pd-0042/media/01936f4e-6c1a-7c3e-9a51-3f0b7f1c2d4e"


def test_connack_properties_and_defaults() -> None:
    limits = BrokerLimits.from_connack(
        5,
        {
            "MaximumPacketSize": 32768,
            "ReceiveMaximum": 5,
            "ServerKeepAlive": 20,
            "TopicAliasMaximum": 10,
            "RetainAvailable": 0,
        },
    )
    assert limits.max_packet == 32768 and limits.receive_max == 5
    assert limits.keepalive_s == 20 and limits.topic_alias_max == 10
    assert limits.max_qos == 2 and not limits.retain
    assert limits.window(32) == 3  # room for birth and `reported`
    assert limits.problems() == ("retain_unavailable",)
    assert BrokerLimits.from_connack(5, {}) == BrokerLimits()
    # MQTT 3.1.1 has no CONNACK properties: nothing is known, nothing assumed.
    assert BrokerLimits.from_connack(3, {"MaximumPacketSize": 10}).max_packet is None
    assert BrokerLimits.from_connack(5, {"MaximumQoS": 0}).problems() == ("qos1_unavailable",)
    assert BrokerLimits(max_packet=600).problems() == ("max_packet_too_small",)
    assert BrokerLimits(receive_max=1).window(32) == 1


def test_publish_size_counts_the_mqtt_header() -> None:
    # fixed header 1 + remaining-length varint; topic length prefix 2; packet id 2; props 1.
    assert publish_size("a/b", 10, 1, 5) == 1 + 1 + (2 + 3 + 2 + 1 + 10)
    assert publish_size("a/b", 10, 0, 4) == 1 + 1 + (2 + 3 + 10)
    assert publish_size("t", 200, 1, 5) == 1 + 2 + (2 + 1 + 2 + 1 + 200)


@given(st.integers(min_value=100, max_value=300_000))
def test_chosen_chunk_always_fits(max_packet: int) -> None:
    limits = BrokerLimits(max_packet=max_packet)
    size = limits.chunk_size(PREFIX)
    if size == 0:
        assert not limits.fits(f"{PREFIX}/99999", MIN_CHUNK)
        return
    assert MIN_CHUNK <= size <= MAX_CHUNK and size % 1024 == 0
    assert limits.fits(f"{PREFIX}/99999", size)


@given(st.binary(max_size=5000), st.integers(min_value=1, max_value=700))
def test_split_is_lossless_and_bounded(data: bytes, size: int) -> None:
    parts = split(data, size)
    assert b"".join(parts) == data and all(len(p) <= size for p in parts)
    assert len(parts) == max(1, -(-len(data) // size))


def test_refused_message_is_retried_a_bounded_number_of_times() -> None:
    s = Strikes(RetryPolicy(max_attempts=3, base_s=2.0, slow_s=300.0))
    assert s.failed(7, 3, now=0.0) is Verdict.RETRY and s.held(7)
    assert s.release(1.0) == [] and s.release(2.0) == [(3, 7)] and not s.held(7)
    assert s.failed(7, 3, now=2.0) is Verdict.RETRY and s.next_release() == 6.0
    assert s.failed(7, 3, now=6.0) is Verdict.SET_ASIDE
    assert not s.held(7) and s.set_aside == 1 and 7 not in s.strikes


def test_priority_0_1_is_never_set_aside_only_stuck() -> None:
    s = Strikes(RetryPolicy(max_attempts=2, base_s=1.0, slow_s=300.0))
    s.failed(1, 0, now=0.0)
    assert s.failed(1, 0, now=1.0) is Verdict.STUCK and 1 in s.stuck
    assert s.next_release() == 301.0 and s.set_aside == 0
    assert s.failed(1, 0, now=301.0) is Verdict.STUCK  # stays kept, on the slow schedule
    s.new_session()  # another session, maybe another broker: one try at once
    assert not s.held(1) and 1 in s.stuck
    s.acked(1)
    assert not s.stuck and not s.held(1)
    assert oversize(s, 2, 1, 0.0) is Verdict.STUCK and oversize(s, 3, 4, 0.0) is Verdict.SET_ASIDE


def test_a_drop_strikes_only_a_message_that_was_alone_in_flight() -> None:
    s = Strikes()
    assert s.dropped([1, 2, 3], [1, 2, 4], now=0.0) == []
    assert s.suspects == {1, 2, 3} and not s.strikes
    # Sent alone next time and dropped again: a strike, still a suspect, not held.
    assert s.dropped([2], [2], now=1.0) == [Verdict.RETRY]
    assert 2 in s.suspects and not s.held(2) and s.strikes[2] == 1
    s.acked(1)
    assert s.suspects == {2, 3}


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4)), max_size=40))
def test_strikes_never_set_aside_priority_0_1(events: list[tuple[bool, int]]) -> None:
    s = Strikes(RetryPolicy(max_attempts=2))
    for n, (alone, prio) in enumerate(events):
        if alone:
            verdict = s.failed(n % 3, prio, float(n))
            assert not (prio <= 1 and verdict is Verdict.SET_ASIDE)
        else:
            s.dropped([n % 3, 5], [prio, prio], float(n))


def test_aside_notice_names_the_message() -> None:
    env = b'{"v":1,"kind":"detection","id":"abc","seq":9,"body":{}}'
    note = aside_notice("grid/v1/d/evt/detection", env, None, "refused")
    assert note == {
        "type": "message_set_aside",
        "reason": "refused",
        "kind": "detection",
        "id": "abc",
        "seq": 9,
        "media_id": None,
        "bytes": len(env),
    }
    chunk = aside_notice("grid/v1/d/media/m1/0", b"\xff" * 5, "m1", "too_large")
    assert chunk["kind"] == "media_chunk" and chunk["media_id"] == "m1" and chunk["id"] is None
    assert aside_notice("grid/v1/d/ack", b"not json", None, "refused")["kind"] == "ack"
