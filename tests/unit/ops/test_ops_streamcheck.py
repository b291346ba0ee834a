"""streamcheck: the central-side check of one device's stream, on streams built here."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ops.streamcheck import Received, check
from tests.kits.streams import DEV, T0, Stream, full_stream


def without(msgs: list[Received], pred: Any) -> list[Received]:
    return [m for m in msgs if not pred(m)]


def seq_of(m: Received) -> int | None:
    if "/media/" in m.topic:
        return None
    return int(json.loads(m.payload)["seq"])


def test_clean_stream_is_ok() -> None:
    s = full_stream()
    r = check(DEV, s.msgs)
    assert r.ok, r.findings
    assert (r.unique, r.checkins, r.media_refs, r.duplicates) == (7, 3, 1, 0)
    assert r.epochs[0].start == 1 and r.epochs[0].last == 7


def test_other_devices_and_non_stored_topics_are_ignored() -> None:
    s = full_stream()
    other = Stream("pd-9999")
    other.checkin()
    extra = [
        Received(f"grid/v1/{DEV}/state", b'{"v":1,"online":true}'),
        Received(f"grid/v1/{DEV}/status", b"{}"),
        Received(f"grid/v1/{DEV}/desired/tasks", b"signed"),
    ]
    r = check(DEV, [*other.msgs, *extra, *s.msgs])
    assert r.ok and r.unique == 7


def test_same_id_same_bytes_is_a_harmless_duplicate() -> None:
    s = full_stream()
    r = check(DEV, [*s.msgs, s.msgs[1], s.msgs[2]])
    assert r.ok and r.duplicates == 2
    assert [f.code for f in r.findings] == ["duplicate"]


def test_same_id_different_bytes_is_an_error() -> None:
    s = full_stream()
    forged = Received(s.msgs[2].topic, s.msgs[2].payload.replace(b'"lamp"', b'"tree"'))
    r = check(DEV, [*s.msgs, forged])
    assert r.codes() == ["conflicting_duplicate"]
    assert r.problems[0].seqs == (3,)


def test_dropped_event_is_a_seq_gap() -> None:
    s = full_stream()
    r = check(DEV, without(s.msgs, lambda m: m.topic.endswith("/evt/incident")))
    assert r.codes() == ["seq_gap"] and r.missing_seqs == (3,)


def test_gap_explained_by_eviction_notice_is_not_a_problem() -> None:
    s = full_stream()
    s.evt("notice", {"type": "outbox_evicted", "kinds": {"incident": 1}, "seq_ranges": [[3, 3]]})
    r = check(DEV, without(s.msgs, lambda m: m.topic.endswith("/evt/incident")))
    assert r.ok and r.epochs[0].explained == (3,)
    assert "gap_explained" in [f.code for f in r.findings]


def test_altered_checkin_breaks_the_chain_at_the_next_one() -> None:
    s = full_stream()
    first = s.msgs[1]
    assert first.topic.endswith("/evt/checkin")
    altered = Received(first.topic, first.payload.replace(b'"cp-1"', b'"cp-9"'))
    msgs = [altered if m is first else m for m in s.msgs]
    r = check(DEV, msgs)
    assert r.codes() == ["chain_break"]
    assert r.problems[0].seqs == (2, 4)  # the altered one (seq 2), found by the next (seq 4)


def test_removed_checkin_shows_as_gap_and_chain_break() -> None:
    s = full_stream()
    r = check(DEV, without(s.msgs, lambda m: seq_of(m) == 4))  # the check-in naming the photo
    assert sorted(r.codes()) == ["chain_break", "seq_gap"]
    assert r.missing_seqs == (4,)
    assert [f.seqs for f in r.problems if f.code == "chain_break"] == [(2, 6)]


def test_first_checkin_must_have_null_prev() -> None:
    s = Stream()
    s.last_checkin = b"something before"
    s.checkin()
    assert check(DEV, s.msgs).codes() == ["chain_break"]


def test_missing_chunk_is_reported() -> None:
    s = full_stream()
    r = check(DEV, without(s.msgs, lambda m: m.topic.endswith("/1") and "/media/" in m.topic))
    assert r.codes() == ["media_chunk_missing"]


def test_missing_media_event_is_reported() -> None:
    s = full_stream()
    r = check(DEV, without(s.msgs, lambda m: m.topic.endswith("/evt/media")))
    assert sorted(r.codes()) == ["media_event_missing", "seq_gap"]


def test_altered_chunk_is_a_mismatch() -> None:
    s = full_stream()
    chunk = next(m for m in s.msgs if m.topic.endswith("/0") and "/media/" in m.topic)
    bad = Received(chunk.topic, b"\xff" + chunk.payload[1:])
    r = check(DEV, [bad if m is chunk else m for m in s.msgs])
    assert set(r.codes()) == {"media_mismatch"}


def test_evicted_photo_is_explained_by_the_notice() -> None:
    s = Stream()
    s.photo_checkin(b"x" * 1000)
    s.evt("notice", {"type": "outbox_evicted", "kinds": {"media": 1}, "seq_ranges": [[2, 2]]})
    kept = [m for m in s.msgs if "/media/" not in m.topic and not m.topic.endswith("/evt/media")]
    r = check(DEV, kept)
    assert r.ok, r.findings
    assert {"media_evicted", "gap_explained"} <= {f.code for f in r.findings}


def test_set_aside_event_and_photo_are_explained_by_their_notices() -> None:
    s = full_stream()
    s.evt(
        "notice",
        {
            "type": "message_set_aside",
            "reason": "refused",
            "kind": "incident",
            "id": None,
            "seq": 3,
            "media_id": None,
            "bytes": 10,
        },
    )
    r = check(DEV, without(s.msgs, lambda m: m.topic.endswith("/evt/incident")))
    assert r.ok and r.epochs[0].explained == (3,)
    s = Stream()
    s.photo_checkin(b"x" * 1000)
    s.evt(
        "notice",
        {
            "type": "message_set_aside",
            "reason": "too_large",
            "kind": "media_chunk",
            "id": None,
            "seq": 2,  # its `media` event's, set aside with it
            "media_id": "m",
            "bytes": 1000,
        },
    )
    kept = [m for m in s.msgs if "/media/" not in m.topic and not m.topic.endswith("/evt/media")]
    r = check(DEV, kept)
    assert r.ok, r.findings


def test_malformed_payload_is_a_problem() -> None:
    s = full_stream()
    r = check(DEV, [*s.msgs, Received(f"grid/v1/{DEV}/evt/checkin", b"\xff{")])
    assert r.codes() == ["malformed"]


def test_mid_stream_capture_with_auto_start() -> None:
    s = full_stream()
    late = s.msgs[3:]  # the capture began after seq 1-3 (and the chain's start) went by
    assert check(DEV, late, from_seq=None).ok
    assert check(DEV, late).missing_seqs == (1, 2, 3)


def reset_life(old: Stream | None = None, **kw: Any) -> tuple[Received, Received, Received]:
    """A new life: the state_reset notice (seq 1), a check-in and an incident."""
    new = Stream(salt=99, **kw)
    notice = new.evt("notice", {"type": "state_reset"})
    checkin = new.checkin()
    tail = new.evt("incident", {"category": "other", "level": 4, "note": "", "photos": []})
    return notice, checkin, tail


def test_state_reset_restarts_seq_even_when_checkins_overtake_the_notice() -> None:
    old = full_stream()
    notice, checkin, tail = reset_life(boot="boot-2", t0=T0 + 3_600_000)
    # The check-in (priority 1) goes out before the notice (priority 3).
    r = check(DEV, [*old.msgs, checkin, notice, tail])
    assert r.ok, r.findings
    assert [e.reset for e in r.epochs] == [False, True]
    assert (r.epochs[0].last, r.epochs[1].start, r.epochs[1].last) == (7, 1, 3)


def test_state_wiped_without_a_reboot_is_split_by_the_boot_clock() -> None:
    old = full_stream()
    notice, checkin, tail = reset_life(boot="boot-1", t0=T0 + 3_600_000, mono0=3_600_000)
    r = check(DEV, [*old.msgs, checkin, notice, tail])
    assert r.ok and [e.last for e in r.epochs] == [7, 3]


def test_new_life_with_a_wrong_clock_keeps_old_messages_out() -> None:
    old = full_stream()
    notice, checkin, tail = reset_life(boot="boot-2", t0=0, time_ok=False)
    r = check(DEV, [*old.msgs, checkin, notice, tail])
    assert r.ok and [e.last for e in r.epochs] == [7, 3]


def test_fresh_device_whose_reset_notice_arrives_late() -> None:
    notice, checkin, tail = reset_life()
    r = check(DEV, [checkin, tail, notice])
    assert r.ok, r.findings
    assert [(e.reset, e.start, e.last) for e in r.epochs] == [(True, 1, 3)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_single_removal_is_found_exactly(data: st.DataObject) -> None:
    s = Stream()
    kinds = data.draw(
        st.lists(st.sampled_from(["checkin", "incident", "ack", "photo"]), min_size=2, max_size=25)
    )
    for i, kind in enumerate(kinds):
        if kind == "checkin":
            s.checkin(f"cp-{i}")
        elif kind == "photo":
            s.photo_checkin(bytes([i]) * 70_000)
        else:
            s.evt(kind, {"note": str(i)})
    # The highest seq cannot be missed by seq alone: nothing after it says it existed.
    gone = data.draw(st.integers(min_value=1, max_value=s.seq - 1))
    kept = [m for m in s.msgs if seq_of(m) != gone]
    random.Random(data.draw(st.integers(0, 2**32))).shuffle(kept)  # priority send order
    r = check(DEV, kept)
    assert r.missing_seqs == (gone,)
    assert "seq_reused" not in r.codes() and "conflicting_duplicate" not in r.codes()


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(rnd: random.Random) -> None:
    s = full_stream()
    msgs = list(s.msgs)
    # Priorities and retries reorder anything, chunks included (they are keyed by index).
    rnd.shuffle(msgs)
    assert check(DEV, msgs).ok


def test_a_wild_seq_is_one_jump_not_a_million_gaps() -> None:
    s = full_stream()
    s.seq = 50_000_000
    s.evt("incident", {"note": "counter broke"})
    r = check(DEV, s.msgs)
    assert r.codes() == ["seq_jump"] and r.missing_seqs == ()
