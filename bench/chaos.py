"""Chaos runs: a real agent process, a steady event stream, many faults of each kind.

Run: scripts/chaos [--faults 20] [--only kill9,broker,proxy,diskfull,clock] [--seed 1]
Prints the figures table of docs/reliability.md; asserts nothing
(tests/system/sync/test_chaos.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kits.chaos import SCENARIOS
from tests.kits.chaosrig import HEADER, KEEPALIVE_S


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faults", type=int, default=20, help="faults per scenario")
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir)")
    args = ap.parse_args()
    base = Path(args.workdir or tempfile.mkdtemp(prefix="chaos-"))
    rows = []
    for name in args.only.split(","):
        began = time.monotonic()
        fig = await SCENARIOS[name](base / name, args.faults, random.Random(args.seed))
        rows.append(fig.row())
        print(
            f"{name}: {time.monotonic() - began:.0f} s, stream findings {fig.problems or 'none'}"
            f"{'; ' + fig.notes if fig.notes else ''}"
        )
    print(f"\nkeep-alive {KEEPALIVE_S} s; logs in {base}\n")
    print(HEADER)
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
