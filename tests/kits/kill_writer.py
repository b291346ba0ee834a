"""A writer process for the kill -9 test: appends forever, printing each acknowledged append."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent.clock import SystemClock
from sync.outbox import Outbox


async def main(state_dir: Path, producers: int, dev: str) -> None:
    clock = SystemClock()
    async with Outbox(state_dir, dev, stamp=clock.stamp, budget_bytes=1 << 30) as ob:
        print("ready", flush=True)

        async def produce(n: int) -> None:
            i = 0
            while True:
                stored = await ob.append("checkin", {"producer": n, "i": i})
                # Printed only after append returned: the promise being tested.
                sys.stdout.write(f"ack {stored.seq} {stored.id}\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(produce(n) for n in range(producers)))


if __name__ == "__main__":
    asyncio.run(
        main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if sys.argv[3:] else "pd-kill")
    )
