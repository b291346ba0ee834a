"""Fuzzing: every parser of outside bytes under hypothesis for a fixed budget.

Run: .venv/bin/python bench/fuzz.py [--examples 20000] [--only nmea,pn532,...]
Prints examples run and time per target; a contract failure stops with hypothesis's report.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kits import fuzz
from tests.kits.fuzz_downlink import AgentThread, downlink_case


def targets(
    workdir: Path, api: fuzz.ApiThread, agent: AgentThread
) -> dict[str, tuple[Any, Callable[..., None]]]:
    """name -> (strategy of argument tuples, check)."""
    cfg = workdir / "agent.toml"
    return {
        "nmea": (st.tuples(fuzz.nmea_stream | st.binary(max_size=2000)), fuzz.check_nmea),
        "pn532": (st.tuples(fuzz.pn532_stream | st.binary(max_size=600)), fuzz.check_pn532),
        "downlink": (st.tuples(fuzz.downlink_doc), lambda d: fuzz.check_downlink(*d)),
        "downlink-payload": (
            st.tuples(fuzz.keyed, st.sampled_from(["mode", "cmd", "tasks", "config"])),
            fuzz.check_signed_payload,
        ),
        "config": (
            st.tuples(fuzz.toml_text | fuzz.deep_toml | st.binary(max_size=400)),
            lambda t: fuzz.check_config(t, cfg),
        ),
        "alarm-body": (
            st.tuples(st.sampled_from(fuzz.MEDIA_TYPES), fuzz.alarm_body),
            fuzz.check_alarm,
        ),
        "alarm-head": (
            st.tuples(fuzz.http_request),
            lambda r: fuzz.check_alarm_head(r.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"),
        ),
        "local-api": (st.tuples(fuzz.http_request), api.check),
        "downlink-state": (st.tuples(downlink_case), lambda case: agent.check(*case)),
    }


SLOW = ("local-api", "downlink-state")


def run(name: str, strategy: Any, check: Callable[..., None], examples: int) -> None:
    count = 0

    @settings(
        # The two targets with a real server or agent behind them are slower per example.
        max_examples=examples if name not in SLOW else max(1, examples // 20),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def body(args: tuple[Any, ...]) -> None:
        nonlocal count
        count += 1
        check(*args)

    began = time.monotonic()
    body()
    took = time.monotonic() - began
    print(f"{name:18s} {count:7d} examples  {took:6.1f} s  {count / took:8.0f} /s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--examples", type=int, default=20000, help="examples per target")
    ap.add_argument("--only", default="", help="comma-separated target names")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # every refusal is logged; millions of lines tell nothing
    with (
        tempfile.TemporaryDirectory() as d,
        fuzz.ApiThread(Path(d) / "api.sock") as api,
        AgentThread(Path(d) / "state") as agent,
    ):
        table = targets(Path(d), api, agent)
        for name in args.only.split(",") if args.only else table:
            strategy, check = table[name]
            run(name, strategy, check, args.examples)


if __name__ == "__main__":
    main()
