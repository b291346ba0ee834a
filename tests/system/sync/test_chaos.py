"""Chaos, short: a real agent process under each fault loses no p0-1 event.

bench/chaos.py runs the same scenarios long and prints the figures of docs/reliability.md.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.keepalive import client_keepalive, worst_detection_s
from tests.kits.chaos import SCENARIOS, faketime_lib

pytestmark = pytest.mark.slow


@given(st.integers(min_value=5, max_value=3600))
def test_negotiated_keepalive_drops_a_silent_link_within_one_and_a_half_intervals(k: int) -> None:
    negotiated = client_keepalive(k)
    assert 1 <= negotiated < k
    assert worst_detection_s(negotiated) <= 1.5 * k


@pytest.mark.parametrize(
    ("name", "faults"), [("kill9", 3), ("broker", 2), ("proxy", 3), ("diskfull", 1), ("clock", 2)]
)
async def test_no_priority_0_1_event_is_lost(name: str, faults: int, tmp_path: Path) -> None:
    if name == "clock" and faketime_lib() is None:
        pytest.skip("libfaketime is not installed (scripts/setup.sh installs it)")
    fig = await SCENARIOS[name](tmp_path, faults, random.Random(f"{name}-{faults}"))
    assert fig.produced > 0
    assert fig.lost_p01 == 0, fig
    assert fig.crashes == 0, (fig, (tmp_path / "agent.log").read_text()[-3000:])
    if "budget" not in fig.scenario:  # a full budget evicts p2-3 on purpose (§7)
        assert fig.missing_other == 0, fig
    if name == "proxy":
        assert fig.detect_s, "the agent never gave up on a half-open link"
