"""The parts of a durable append that no outbox code can remove, measured alone (bench_sync).

- the hop: one loop -> thread -> loop round trip doing nothing, by the outbox's own means (a
  SimpleQueue the thread sleeps on, `call_soon_threadsafe` back): what a single writer pays
  on top of a one-row commit, since SQLite stays off the event loop (house rule 5);
- a producer's await: 100 tasks each awaiting a future, resolved 100 at a time by one
  callback, as the outbox answers a batch: what each of 100 producers pays per message;
- the envelope: building one check-in's JSON envelope (the ceilings store ready bytes).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable

from agent.clock import SystemClock
from sync import envelope


async def hop_us(n: int = 5000) -> float:
    """Microseconds per empty loop -> thread -> loop round trip."""
    loop = asyncio.get_running_loop()
    q: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()

    def serve() -> None:
        while (fut := q.get()) is not None:
            loop.call_soon_threadsafe(fut.set_result, None)

    thread = threading.Thread(target=serve)
    thread.start()
    t0 = time.perf_counter()
    for _ in range(n):
        fut = loop.create_future()
        q.put(fut)
        await fut
    dt = time.perf_counter() - t0
    q.put(None)
    thread.join()
    return dt / n * 1e6


async def await_us(producers: int = 100, each: int = 50) -> float:
    """Microseconds per message for `producers` tasks awaiting futures answered in batches."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.Future[None]] = []
    answer: list[asyncio.Handle] = []

    def resolve() -> None:
        answer.clear()
        batch = waiting[:]
        waiting.clear()
        for fut in batch:
            fut.set_result(None)

    async def produce() -> None:
        for _ in range(each):
            fut = loop.create_future()
            waiting.append(fut)
            if not answer:
                answer.append(loop.call_soon(resolve))
            await fut

    t0 = time.perf_counter()
    await asyncio.gather(*(produce() for _ in range(producers)))
    return (time.perf_counter() - t0) / (producers * each) * 1e6


def envelope_us(body: dict[str, object], n: int = 5000) -> float:
    """Microseconds to build one envelope (fresh id) around `body`."""
    stamp = SystemClock().stamp()
    build: Callable[[int], bytes] = lambda seq: envelope.envelope(  # noqa: E731
        kind="checkin",
        msg_id=envelope.uuid7(stamp.ts),
        dev="pd-bench",
        seq=seq,
        stamp=stamp,
        hist=False,
        body=body,
    )
    t0 = time.perf_counter()
    for seq in range(n):
        build(seq)
    return (time.perf_counter() - t0) / n * 1e6


def report(body: dict[str, object], one_row_us: float, per_row_100_us: float) -> None:
    """Print the floors beside the commit costs of the same run, and the best ratios they allow."""
    hop = min(asyncio.run(hop_us()) for _ in range(3))
    wait = min(asyncio.run(await_us()) for _ in range(3))
    env = min(envelope_us(body) for _ in range(3))
    lines = (
        f"(e) floor: loop<->thread hop alone        {hop:8.1f} us (one-row commit "
        f"{one_row_us:.1f})",
        f"(e) floor: a producer's await per message {wait:8.1f} us",
        f"(e) floor: one envelope                   {env:8.1f} us (100-row commit, per row "
        f"{per_row_100_us:.1f})",
        "    best single writer ratio (commit + hop only)     "
        f"{one_row_us / (one_row_us + hop):5.2f}",
        "    best 100-producer ratio (row + await + envelope) "
        f"{per_row_100_us / (per_row_100_us + wait + env):5.2f}",
    )
    print("\n".join(lines))
