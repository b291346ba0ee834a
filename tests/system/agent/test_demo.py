"""`edge-agent demo --seconds 40`: both roles produce, a broker cut loses nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.demo.broker import mosquitto_path
from tests.kits.paths import REPO

ROOT = REPO


def delivered(out: str, dev: str, kind: str) -> int:
    m = re.search(rf"{dev}\s*│\s*{kind}\s*│\s*(\d+)\s*│\s*(\d+)", out)
    return int(m.group(1)) if m else 0


@pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")
def test_short_demo_shows_both_roles_and_loses_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--seconds", "40", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=240,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "TERM": "dumb"},
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "nothing lost" in out
    assert delivered(out, "pd-demo", "checkin") >= 1
    assert delivered(out, "gw-demo", "detection") >= 2  # crowd and water_zone starts
    for dev in ("pd-demo", "gw-demo"):
        m = re.search(rf"{dev}\s*│\s*all: produced (\d+), outbox rows left (\d+)\s*│\s*(\d+)", out)
        assert m is not None, out
        produced, left, got = map(int, m.groups())
        # Rows left in the outbox (media chunks, a late event on a loaded machine) are not lost.
        assert 0 < got <= produced and (got == produced or left > 0)
    before, _, after = out.partition("summary (")
    assert "{" not in before  # no raw JSON without --verbose
    # Piped (no terminal): the events as they happened, one plain line each, and the summary
    # per rule, so the crowd and the water zone the README promises can be seen.
    for rule, zone in (("crowd", "plaza"), ("water_zone", "lake")):
        assert re.search(
            rf"\d\d:\d\d:\d\d gw-demo detection {rule} start in {zone} \(\d+\)", before
        )
        m = re.search(rf"gw-demo\s*│\s*detection {rule} start\s*│\s*(\d+)", after)
        assert m is not None and int(m.group(1)) >= 1, after
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps  # the broker is gone
