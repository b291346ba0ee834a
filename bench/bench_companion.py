"""Companion page figures: fix-to-confirmation latency, page weight, the agent's extra memory.

Run: .venv/bin/python bench/bench_companion.py [--checkins 20]

1. Latency: a real outbox, media store and patrol driver (file camera, photo checkpoints, so
   the early photo is part of the path) with the companion server on 127.0.0.1; an aiohttp
   client holds the SSE stream open like the phone's EventSource. Fixes go in one by one; the
   figure is from handing the driver the fix that completes the dwell inside a checkpoint to
   the `checkin` event read by the client.
2. Page weight: the bytes of index.html + app.js + app.css, raw and gzip -9.
3. Memory: RSS of this process before and after importing aiohttp and starting the server
   with a paired phone on the event stream (VmRSS from /proc; Linux only).
Not a test: it prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.patrol.camera import Camera
from agent.patrol.config import CompanionConfig
from tests.kits.patrol import at, camera_cfg, cp, fix_at, jpeg_folder, record, rig, task


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def page_weight() -> None:
    from agent.patrol.companion.server import page_files

    files = page_files()
    raw = sum(len(b) for b in files.values())
    gz = sum(len(gzip.compress(b, 9)) for b in files.values())
    each = ", ".join(f"{n} {len(b)}" for n, b in files.items())
    print(f"page weight: {raw} bytes ({each}); gzip -9: {gz} bytes")


async def latency(n: int) -> None:
    spots = [at(100 * (i + 1), 0) for i in range(n)]
    cps = [cp(f"cp{i}", where, radius=20, dwell=2, photo=True) for i, where in enumerate(spots)]
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        cam = Camera(camera_cfg(jpeg_folder(Path(tmp) / "pics")))
        async with (
            cam,
            rig(state, record([task("t", cps)]), camera=cam) as (driver, outbox, media, fed),
        ):
            before = rss_kb()  # the patrol running without the page
            import aiohttp

            from agent.demo.broker import free_port
            from agent.patrol.companion.files import device_code
            from agent.patrol.companion.server import CompanionServer

            cfg = CompanionConfig(enabled=True, port=free_port(), requests_per_min=6000)
            server = CompanionServer(
                driver, cfg, state_dir=state, outbox=outbox, media_path=media.path
            )
            async with (
                server,
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
            ):
                base = f"http://127.0.0.1:{server.port}"
                pair = await http.post(f"{base}/api/pair", json={"code": device_code(state, 6)})
                assert pair.status == 200
                for _ in range(3):
                    await (await http.get(f"{base}/")).read()
                    await (await http.get(f"{base}/api/state")).read()
                events = await http.get(f"{base}/api/events")
                assert events.status == 200, events.status
                utc = int(time.time() * 1000)
                for where in spots:
                    got = asyncio.ensure_future(_next_checkin(events))
                    fed_at = 0.0
                    while not got.done():
                        utc += 1000
                        fed_at = time.perf_counter()
                        await fed.fix(fix_at(where, utc_ms=utc))
                        await asyncio.wait([got], timeout=0.3)
                    samples.append((got.result() - fed_at) * 1000)
                after = rss_kb()
                events.close()
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    print(
        f"fix inside a checkpoint -> 'checked in' on the page (SSE, photo checkpoint): "
        f"n={len(ordered)} median={statistics.median(ordered):.1f} ms p95={p95:.1f} ms "
        f"max={ordered[-1]:.1f} ms"
    )
    print(
        f"agent RSS with the page on: +{after - before} kB (aiohttp imported, server running, "
        f"one paired phone with an open event stream; patrol alone: {before} kB in this process "
        f"which also holds the test kit's numpy/Pillow)"
    )


async def _next_checkin(events: object) -> float:
    content = events.content  # type: ignore[attr-defined]
    while True:
        line = await content.readline()
        if not line:
            raise RuntimeError("the event stream ended")
        if line.startswith(b"event: checkin"):
            return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkins", type=int, default=20)
    args = parser.parse_args()
    page_weight()
    asyncio.run(latency(args.checkins))


if __name__ == "__main__":
    main()
