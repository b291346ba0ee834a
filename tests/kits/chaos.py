"""The chaos scenarios: run a rig, inject `faults` faults, return figures.

Used by tests/system/sync/test_chaos.py (a few faults, asserts zero loss) and bench/chaos.py
(long runs,
prints the table of docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import errno
import glob
import os
import random
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.kits.chaosrig import KEEPALIVE_S, Figures, Rig
from tests.kits.tcpproxy import TcpProxy


async def _between(rng: random.Random, lo: float, hi: float) -> None:
    await asyncio.sleep(rng.uniform(lo, hi))


async def kill9(workdir: Path, faults: int, rng: random.Random) -> Figures:
    """(a) SIGKILL the agent at random moments, restart it at once."""
    async with Rig(workdir) as rig:
        assert rig.agent is not None
        for _ in range(faults):
            await _between(rng, 0.1, 2.0)  # a random moment of its run, start-up excluded
            await asyncio.to_thread(rig.agent.kill)
            rig.agent.start()
            rig.heal()
            await rig.ready()
        await rig.drain()
        return rig.figures("a. agent SIGKILL", faults)


async def broker_restarts(workdir: Path, faults: int, rng: random.Random) -> Figures:
    """(b) Stop and restart the broker; every other restart lands during the backlog flush."""
    async with Rig(workdir, rate_hz=20) as rig:
        for i in range(faults):
            await _between(rng, 0.5, 2.0)
            await asyncio.to_thread(rig.broker.stop)
            await _between(rng, 0.5, 3.0)  # a backlog builds up meanwhile
            await asyncio.to_thread(rig.broker.start)
            if i % 2:
                # Right into the flush of that backlog: down again before it can finish.
                await _between(rng, 0.05, 0.4)
                await asyncio.to_thread(rig.broker.stop)
                await _between(rng, 0.2, 1.0)
                await asyncio.to_thread(rig.broker.start)
            rig.heal()
        await rig.drain()
        return rig.figures("b. broker stop/start", faults)


async def proxy_faults(workdir: Path, faults: int, rng: random.Random) -> Figures:
    """(c) Through a proxy: drop all connections, stall them silently (half-open), throttle.

    `detect_s` is how long after a stall began the agent gave up on the stalled connection
    (closed it or dialled again); the target is 1.5 keep-alive intervals.
    """
    rig = Rig(workdir)
    detect: list[float] = []
    async with TcpProxy(rig.broker.port) as proxy:
        rig._via_proxy = proxy.port
        async with rig:
            loop = asyncio.get_running_loop()
            for i in range(faults):
                await _between(rng, 1.0, 3.0)
                kind = i % 3
                if kind == 0:
                    await proxy.drop()
                elif kind == 1:
                    began = loop.time()
                    proxy.stall()
                    while loop.time() - began < 4 * KEEPALIVE_S:
                        after = [t - began for t in proxy.accepted + proxy.client_closed]
                        if any(t > 0 for t in after):
                            detect.append(min(t for t in after if t > 0))
                            break
                        await asyncio.sleep(0.05)
                    await proxy.heal()
                else:
                    proxy.throttle(rng.choice([500, 2000, 8000]))
                    await _between(rng, 2.0, 5.0)
                    await proxy.heal()
                rig.heal()
            await rig.drain()
            return rig.figures("c. proxy drop/half-open/throttle", faults, detect)


def _mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of `size` at `path`; False where this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    return subprocess.run(cmd, check=False, capture_output=True).returncode == 0


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 512, 1):  # down to the last byte
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


async def disk_full(workdir: Path, faults: int, rng: random.Random) -> Figures:
    """(d) The state directory's filesystem (a small tmpfs) fills up, then frees again.

    Without root (no mount) the outbox byte budget stands in: the broker is down and the
    backlog passes a small budget.
    """
    mnt = workdir / "statefs"
    if not await asyncio.to_thread(_mount_tmpfs, mnt, "8m"):
        return await _budget_full(workdir, faults, rng)
    try:
        async with Rig(workdir, state=mnt / "state") as rig:
            for _ in range(faults):
                await _between(rng, 1.0, 2.0)
                filler = await asyncio.to_thread(_fill, mnt)
                await _between(rng, 1.0, 3.0)
                filler.unlink()
                rig.heal()
            await rig.drain()
            return rig.figures("d. state filesystem full (tmpfs)", faults)
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", "-l", str(mnt)], check=False)


async def _budget_full(workdir: Path, faults: int, rng: random.Random) -> Figures:
    # The budget is soft for priorities 0-1 (kept beyond it, §7): this shows they stay whole
    # while the backlog passes the budget; the tmpfs run is the real full disk.
    async with Rig(workdir, budget=64 * 1024, rate_hz=40) as rig:
        for _ in range(faults):
            await asyncio.to_thread(rig.broker.stop)
            await _between(rng, 5.0, 10.0)
            await asyncio.to_thread(rig.broker.start)
            rig.heal()
            await _between(rng, 1.0, 2.0)
        await rig.drain()
        return rig.figures("d. outbox byte budget full", faults)


def faketime_lib() -> str | None:
    """libfaketime's preload library (Debian's libfaketime), if installed."""
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob(
        "/usr/lib/faketime/libfaketime.so.1"
    )
    return found[0] if found else None


async def clock_jumps(workdir: Path, faults: int, rng: random.Random) -> Figures:
    """(e) The agent's wall clock jumps back and forth by minutes to days (libfaketime)."""
    lib = faketime_lib()
    if lib is None:
        raise RuntimeError("libfaketime is not installed (scripts/setup.sh installs it)")
    offset_file = workdir / "faketime"
    workdir.mkdir(parents=True, exist_ok=True)
    offset_file.write_text("+0\n")
    env = {
        "LD_PRELOAD": lib,
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_DONT_RESET": "1",
    }
    async with Rig(workdir, env=env) as rig:
        for _ in range(faults):
            await _between(rng, 1.0, 3.0)
            jump = rng.choice([-86400, -3600, -120, 120, 3600, 86400 * 30])
            offset_file.write_text(f"{jump:+d}\n")
            await _between(rng, 1.0, 3.0)
            offset_file.write_text("+0\n")
            rig.heal()
        await rig.drain()
        fig = rig.figures("e. wall clock jumps", faults)
        assert rig.central is not None
        skewed = sum(1 for s in rig.central.skew_ms if abs(s) > 60_000)
        fig.notes = f"{skewed} events stamped by a jumped clock"
        return fig


SCENARIOS: dict[str, Callable[[Path, int, random.Random], Awaitable[Figures]]] = {
    "kill9": kill9,
    "broker": broker_restarts,
    "proxy": proxy_faults,
    "diskfull": disk_full,
    "clock": clock_jumps,
}
