"""Plain tests of the pure core: mode resolution, eviction choice, backoff, envelopes, config."""

from __future__ import annotations

import json
import random
import uuid
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clock import SystemClock
from agent.config.model import parse
from agent.errors import ConfigError
from agent.modes import ModeDoc, next_expiry, resolve, validate_mode_body
from firmware_bridge.aio import Backoff
from sync import envelope
from sync.ordering import RowInfo, choose_evictions, eviction_notice, seq_ranges
from sync.outbox import Row
from sync.reconnect import LinkState, Reconnect
from sync.window import Scan


# ----- modes -----------------------------------------------------------------------------------
def test_most_severe_unexpired_wins_and_expiry_reverts() -> None:
    docs = [
        ModeDoc("dev:pd-1", "holiday", 4, None),
        ModeDoc("zone:ruyihu", "emergency", 2, exp=1_000),
        ModeDoc("zone:ruyihu.cbd", "major_event", 9, exp=5_000),
    ]
    assert resolve(docs, 500, "normal").reported() == {
        "name": "emergency",
        "ver": 2,
        "scope": "zone:ruyihu",
    }
    assert resolve(docs, 1_000, "normal").name == "major_event"
    assert resolve(docs, 6_000, "normal").reported() == {
        "name": "holiday",
        "ver": 4,
        "scope": "dev",
    }
    assert resolve([], 0, "holiday").reported() == {
        "name": "holiday",
        "ver": None,
        "scope": "default",
    }
    assert next_expiry(docs, 500) == 1_000 and next_expiry(docs, 5_000) is None
    # Unknown time: nothing is treated as expired.
    assert resolve(docs, None, "normal").name == "emergency"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["normal", "holiday", "major_event", "emergency"]), st.integers(0, 3)
        ),
        max_size=6,
    )
)
def test_resolution_is_order_independent(items: list[tuple[str, int]]) -> None:
    docs = [ModeDoc(f"zone:z{i}", m, v, None) for i, (m, v) in enumerate(items)]
    assert resolve(docs, 0, "normal") == resolve(list(reversed(docs)), 0, "normal")


def test_mode_body_validation() -> None:
    assert validate_mode_body({"mode": "emergency", "reason": "flood"})["mode"] == "emergency"
    for bad in ({"mode": "panic"}, {"mode": "normal", "x": 1}, {"mode": "normal", "reason": 3}):
        with pytest.raises(ValueError):
            validate_mode_body(bad)


# ----- eviction and ordering -------------------------------------------------------------------
def rows(*spec: tuple[int, int]) -> list[RowInfo]:
    return [
        RowInfo(i, p, size, "detection" if p == 2 else "x", i) for i, (p, size) in enumerate(spec)
    ]


def test_eviction_lowest_priority_oldest_first_never_0_1() -> None:
    cands = rows((1, 500), (2, 100), (4, 100), (3, 100), (4, 100), (0, 900))
    assert [r.rowid for r in choose_evictions(cands, 150)] == [2, 4]
    assert [r.rowid for r in choose_evictions(cands, 10_000)] == [1, 2, 3, 4]


def test_eviction_takes_whole_media_groups() -> None:
    cands = [
        RowInfo(1, 4, 10, "media", None, "m1"),
        RowInfo(2, 4, 10, "media", None, "m1"),
        RowInfo(3, 4, 10, "media", 7, "m1"),
        RowInfo(4, 4, 10, "media", None, "m2"),
    ]
    assert [r.rowid for r in choose_evictions(cands, 5)] == [1, 2, 3]


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(1, 1000)), max_size=30),
    st.integers(0, 20_000),
)
def test_eviction_never_touches_protected_rows(spec: list[tuple[int, int]], need: int) -> None:
    cands = rows(*spec)
    chosen = choose_evictions(cands, need)
    assert all(r.priority >= 2 for r in chosen)
    evictable = sum(r.size for r in cands if r.priority >= 2)
    assert sum(r.size for r in chosen) >= min(need, evictable)


def test_seq_ranges_and_notice_carry_over() -> None:
    assert seq_ranges([5, 1, 2, 3, 7, 8]) == [[1, 3], [5, 5], [7, 8]]
    first = eviction_notice(rows((2, 10), (2, 10)))
    second = eviction_notice([RowInfo(9, 3, 5, "notice", 9)], [first])
    assert second["seq_ranges"] == [[0, 1], [9, 9]]
    assert second["kinds"] == {"detection": 2, "notice": 1}


def row(prio: int, rowid: int) -> Row:
    return Row(rowid, prio, "t", b"", 1, False)


def rescan(cursor: tuple[int, int], buffer: deque[Row], priority: int) -> tuple[int, int]:
    scan = Scan()
    scan.cursor, scan.buffer = cursor, buffer
    scan.new_row(priority)
    return scan.cursor


def test_rescan_when_new_row_outranks_buffer() -> None:
    buf = deque([row(3, 10), row(4, 11)])
    assert rescan((4, 11), buf, 0) == (0, -1) and not buf
    buf = deque([row(1, 10), row(1, 12)])
    assert rescan((1, 12), buf, 2) == (1, 12) and len(buf) == 2
    assert rescan((4, 50), deque(), 2) == (2, -1)
    buf = deque([row(2, 10), row(4, 11)])
    assert rescan((4, 11), buf, 3) == (2, 9)
    # Rows in flight were skipped but passed: the cursor, not the buffer, decides.
    buf = deque([row(1, 7)])
    assert rescan((3, 5), buf, 1) == (1, -1) and not buf


# ----- reconnect -------------------------------------------------------------------------------
def test_backoff_is_jittered_and_capped() -> None:
    b = Backoff(1.0, 30.0)
    rng = random.Random(1)
    delays = [b.delay(n, rng) for n in range(20)]
    assert all(0.5 <= d <= 30.0 for d in delays)
    assert len(set(delays)) == len(delays)
    assert max(b.delay(50, rng) for _ in range(200)) <= 30.0


def test_reconnect_transitions() -> None:
    m = Reconnect().connecting().failed()
    assert m.state is LinkState.BACKOFF and m.failures == 1
    m = m.connecting().failed().connecting().connected()
    # A CONNACK alone does not reset the backoff: only a session that stayed up does.
    assert m.state is LinkState.CONNECTED and m.failures == 2
    assert m.failed().failures == 3
    m = m.stable()
    assert m.state is LinkState.CONNECTED and m.failures == 0
    with pytest.raises(ValueError):
        m.connecting()


# ----- envelopes and time ----------------------------------------------------------------------
def test_uuid7_layout_and_time_order() -> None:
    a = uuid.UUID(envelope.uuid7(1_764_234_902_123))
    b = uuid.UUID(envelope.uuid7(1_764_234_902_124))
    assert a.version == 7 and a.variant == uuid.RFC_4122
    assert int(a.hex[:12], 16) == 1_764_234_902_123
    assert str(a) < str(b)


def test_envelope_is_compact_utf8_json() -> None:
    stamp = envelope.TimeStamp(5, "ntp", True, "boot", 7)
    raw = envelope.envelope(
        kind="incident",
        msg_id="i",
        dev="d",
        seq=1,
        stamp=stamp,
        hist=True,
        body={"note": "路灯坏了"},
    )
    assert raw.startswith(b'{"v":1,"kind":"incident"')
    assert "路灯坏了".encode() in raw and b" " not in raw
    assert json.loads(raw)["hist"] is True


def test_clock_prefers_ntp_then_recent_gps_then_rtc() -> None:
    from firmware_bridge.types import Fix

    mono = [50_000]
    synced = [False]
    clock = SystemClock(
        boot="b",
        synced=lambda: synced[0],
        has_rtc=True,
        wall_ms=lambda: 1_800_000_000_000,
        mono_ms=lambda: mono[0],
    )
    assert (clock.stamp().ts_src, clock.stamp().time_ok) == ("rtc", False)
    jumps: list[int] = []
    clock.jump_listeners.append(jumps.append)
    fix = Fix(valid=True, utc_ms=1_800_000_100_000, lat=1.0, lon=2.0, mono_ms=49_000)
    clock.on_fix(fix)
    clock.on_fix(fix)
    stamp = clock.stamp()
    assert (stamp.ts_src, stamp.time_ok, stamp.ts, stamp.mono_ms) == (
        "gps",
        True,
        1_800_000_101_000,
        50_000,
    )
    assert jumps == [101_000]  # GPS (carried 1 s forward) is 101 s ahead: told once
    synced[0] = True
    assert clock.stamp().ts_src == "ntp" and clock.stamp().ts == 1_800_000_000_000


# ----- config ----------------------------------------------------------------------------------
def test_config_errors_name_key_paths() -> None:
    with pytest.raises(ConfigError) as err:
        parse(
            {
                "device": {"id": "Bad Id", "role": "patrol", "colour": 1},
                "broker": {"protocol": 4},
                "trust": {"ops_keys": [{"kid": "a", "public_key": "x"}]},
            }
        )
    paths = dict(err.value.problems)
    assert set(paths) == {
        "device.id",
        "device.colour",
        "broker.protocol",
        "trust.ops_keys.0.public_key",
    }
    assert paths["device.colour"] == "unknown key"
