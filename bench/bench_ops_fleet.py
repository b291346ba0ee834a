"""Fleet push: N lightweight patrol agents on one local Mosquitto; time from push to all acks.

Run: .venv/bin/python bench/bench_ops_fleet.py [--agents 50] [--rounds 3]
Prints the wall time of `ops push-tasks --role patrol` (inventory read, N signed documents,
publish, N acks) and of `ops set-mode --zone` (one document, N acks), per round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.clock import SystemClock
from agent.demo.broker import Broker
from agent.ops import cli
from agent.runtime.agent import Agent
from tests.kits.agents import make_config


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.start()
        try:
            key = work / "ops.pem"
            with contextlib.redirect_stdout(io.StringIO()) as buf:
                cli.main(["keygen", "--out", str(key), "--kid", "ops-b"])
            line = next(x for x in buf.getvalue().splitlines() if x.startswith("ops_keys = "))
            import tomllib

            trust = tomllib.loads(line)
            tasks = work / "tasks.json"
            tasks.write_text('{"tasks": []}')
            sign = ["--signing-key", str(key), "--kid", "ops-b", "--port", str(broker.port)]
            async with contextlib.AsyncExitStack() as stack:
                agents = []
                for i in range(n):
                    cfg = make_config(
                        work / f"s{i}",
                        broker.port,
                        trust=trust,
                        device={"id": f"pd-{i:04d}", "zones": ["ruyihu"]},
                    )
                    clock = SystemClock(synced=lambda: True)
                    agents.append(await stack.enter_async_context(Agent(cfg, clock=clock)))
                while not all(a.link.session is not None for a in agents):
                    await asyncio.sleep(0.1)
                for label, argv in (
                    ("push-tasks --role patrol", ["push-tasks", "--role", "patrol"]),
                    ("set-mode --zone ruyihu", ["set-mode", "holiday", "--zone", "ruyihu"]),
                ):
                    times = []
                    for r in range(rounds):
                        extra = ["--file", str(tasks)] if "push-tasks" in argv else []
                        reason = ["--reason", f"bench {r}"] if "set-mode" in argv else []
                        t0 = time.perf_counter()
                        with contextlib.redirect_stdout(io.StringIO()) as out:
                            code = await asyncio.to_thread(
                                cli.main, [*argv, *extra, *reason, *sign, "--timeout", "60"]
                            )
                        times.append(time.perf_counter() - t0)
                        assert code == 0, out.getvalue()[-2000:]
                    print(
                        f"{label}: {n} agents, median {statistics.median(times):.2f} s "
                        f"(rounds {', '.join(f'{t:.2f}' for t in times)})"
                    )
        finally:
            broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    asyncio.run(main(a.agents, a.rounds))
