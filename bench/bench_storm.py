"""Benchmark: the agent against a broker with Maximum Packet Size 32 KiB.

Run: .venv/bin/python bench/bench_storm.py [--seconds 30] [--protocol 5]

A 150 kB photo is queued behind an incident; for --seconds the script stores an incident every
100 ms (what a local API request does) and prints how many times the agent connected, whether
the photo arrived, and the store latency while the link works. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.demo.broker import Broker
from agent.media import MediaStore
from agent.runtime.agent import Agent
from tests.kits.agents import DEV, make_config
from tests.kits.mqtt import Watcher


async def run(seconds: float, protocol: int, work: Path) -> None:
    broker = Broker(work / "broker")
    broker.conf.write_text(broker.conf.read_text() + "max_packet_size 32768\n")
    broker.start()
    w = Watcher(broker.host, broker.port)
    cfg = make_config(work / "state", broker.port, broker={"protocol": protocol})
    lat: list[float] = []
    try:
        async with Agent(cfg) as agent:
            while agent.link.session is None:
                await asyncio.sleep(0.05)
            media = MediaStore(work / "state", DEV, agent.outbox, quota_bytes=10_000_000)
            ref = await media.store(os.urandom(150_000))
            naming = await agent.outbox.append("incident", {"photos": [ref]})
            await media.send(ref, naming)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.perf_counter()
                await agent.outbox.append("incident", {"note": "local API"})
                lat.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.1)
            connects = agent.link.connects
        photo = any(t.endswith("/evt/media") for t, _, _ in w.messages)
        notes = [t for t, _, _ in w.messages if t.endswith("/evt/notice")]
    finally:
        w.close()
        broker.stop()
    lat.sort()
    print(f"protocol {protocol}, {seconds:.0f} s against max_packet_size 32768:")
    print(f"  connects:                    {connects}")
    print(f"  photo's media event arrived: {photo}")
    print(f"  notices received:            {len(notes)}")
    print(
        f"  incident store latency:      p50 {statistics.median(lat):.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} stores)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--protocol", type=int, default=5, choices=(3, 5))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.seconds, args.protocol, Path(tmp)))


if __name__ == "__main__":
    main()
