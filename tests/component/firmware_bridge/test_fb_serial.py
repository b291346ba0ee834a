"""Serial link and GpsSource on real pty pairs: reads, unplug/replug, reopen."""

from __future__ import annotations

import asyncio
import os
import random
import tty

import pytest

from agent.errors import DeviceError
from firmware_bridge.aio import Backoff
from firmware_bridge.gps import GpsSource
from firmware_bridge.serial_link import SerialLink
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.types import Fix
from tests.kits.fb import NMEA_DIR, eventually, require, scaled_sleep

FAST = scaled_sleep(0.01)
START = 1_764_234_900_000
WALK = [(31.2304, 121.4737), (31.2314, 121.4737), (31.2314, 121.4750)]


@pytest.fixture
def pty_pair() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        os.close(fd)


def test_backoff_is_jittered_capped_and_resets() -> None:
    b, rng = Backoff(1.0, 8.0), random.Random(1)
    delays = [b.delay(n, rng) for n in range(8)]
    assert all(0 < d <= 8.0 for d in delays)
    assert 0.5 <= delays[-1] <= 8.0  # capped at 8 s
    assert len({round(d, 6) for d in delays}) == len(delays)  # jitter: no two equal
    assert b.delay(0, rng) <= 1.0  # attempt 0 (after a success) starts again at the base


async def test_link_reads_and_writes_a_real_pty(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    async with SerialLink(path, 9600, sleep=FAST, exclusive=False) as link:
        await link.wait_connected()
        os.write(master, b"$GPGGA,1*00\r\n")
        chunks = b""
        while b"\n" not in chunks:
            chunks += await link.read()
        assert chunks == b"$GPGGA,1*00\r\n"
        await link.write(b"\x55\x55hello")
        await eventually(lambda: link.counters()["bytes_out"] == 7)
        assert os.read(master, 100) == b"\x55\x55hello"
        assert link.counters()["bytes_in"] == 13 and link.connected


async def test_link_write_while_disconnected_raises_device_error(tmp_path: object) -> None:
    async with SerialLink("/nonexistent/ttyX", 9600, sleep=FAST) as link:
        await eventually(lambda: link.counters()["open_failures"] >= 2)
        assert not link.connected
        with pytest.raises(DeviceError):
            await link.write(b"x")


async def test_gps_unplug_and_replug_on_a_pty() -> None:
    async with (
        GpsSimulator(walk=WALK, speed=50, start_utc_ms=START, seed=3) as sim,
        GpsSource(sim.port, 9600, sleep=FAST, clock_ms=lambda: 777) as gps,
    ):
        fixes = gps.fixes()
        before = [await anext(fixes) for _ in range(3)]
        assert all(f.valid and f.mono_ms == 777 for f in before)
        assert gps.counters()["connected"]

        sim.unplug()
        await eventually(lambda: not gps.counters()["connected"])
        await eventually(lambda: gps.counters()["open_failures"] >= 2)  # retrying

        sim.replug()
        await eventually(lambda: gps.counters()["connected"])
        after = await anext(fixes)
        while after.utc_ms is not None and after.utc_ms <= (before[-1].utc_ms or 0):
            after = await anext(fixes)  # skip a fix queued before the unplug
        counters = gps.counters()
        assert after.valid and counters["reopenings"] == 1
        assert counters["bytes"] > 0 and counters["sentences"] >= 9


async def test_gps_source_on_a_missing_port_keeps_retrying_and_connects_later(
    tmp_path: object,
) -> None:
    path = os.path.join(str(tmp_path), "ttyLATE")
    async with GpsSource(path, 9600, sleep=FAST) as gps:
        await eventually(lambda: gps.counters()["open_failures"] >= 3)
        assert not gps.counters()["connected"] and gps.latest is None
        async with GpsSimulator(walk=WALK, speed=50, start_utc_ms=START, link_path=path) as sim:
            assert sim.port == path
            fix = await anext(gps.fixes())
            assert fix.valid and gps.counters()["connected"]


async def test_replay_of_a_capture_through_pty_gives_the_readme_first_fix() -> None:
    path = require(NMEA_DIR / "gpsd/ublox-zed-f9p-nmea.log")
    async with (
        GpsSimulator(replay=path, speed=50, paused=True) as sim,
        GpsSource(sim.port, 9600, sleep=FAST, idle_flush_s=0.01) as gps,
    ):
        # Let the port open before the first epoch is written, so nothing is flushed away.
        await eventually(lambda: gps.counters()["connected"])
        sim.resume()
        got: list[Fix] = []
        async for fix in gps.fixes():
            got.append(fix)
            if fix.valid:
                break
    first = got[-1]
    assert first.utc_ms == 1555029596000
    assert first.lat == pytest.approx(-45.8775672, abs=1e-7)
    assert first.lon == pytest.approx(170.5001113, abs=1e-7)


async def test_idle_flush_emits_the_last_epoch_without_a_following_one(
    pty_pair: tuple[int, str],
) -> None:
    master, path = pty_pair
    line = (
        b"$GPGGA,030719.000,3747.0873,S,17518.8938,E,1,08,1.1,59.9,M,23.7,M,,0000*7D\r\n"
        b"$GPRMC,030719.000,A,3747.0873,S,17518.8938,E,0.69,181.39,311214,,,A*7D\r\n"
    )
    async with GpsSource(path, 9600, sleep=FAST, idle_flush_s=0.05) as gps:
        await eventually(lambda: gps.counters()["connected"])
        os.write(master, line)
        fix = await asyncio.wait_for(anext(gps.fixes()), 10)
    assert fix.valid and fix.utc_ms == 1419995239000


async def test_corrupted_capture_through_pty_is_counted_and_gives_no_false_fix() -> None:
    path = require(NMEA_DIR / "gpsd/gp-320fw-2019-04-07-coldboot.log")
    fixes: list[Fix] = []

    async def collect(gps: GpsSource) -> None:
        async for fix in gps.fixes():
            fixes.append(fix)

    async with (
        GpsSimulator(replay=path, speed=100, paused=True) as sim,
        GpsSource(sim.port, 9600, sleep=FAST, idle_flush_s=0.5) as gps,
        asyncio.TaskGroup() as tg,
    ):
        consumer = tg.create_task(collect(gps), name="collect-fixes")
        await eventually(lambda: gps.counters()["connected"])
        sim.resume()
        await sim.finished.wait()
        await eventually(lambda: gps.counters()["epochs"] >= 20)
        counters = gps.counters()
        consumer.cancel()
    assert counters["bad_checksum"] > 10 and counters["fixes_dropped"] == 0
    assert counters["dropped"]["bad_char"] >= 1 and counters["garbage_bytes"] > 0
    valid = [f for f in fixes if f.valid]
    assert len(valid) == 2  # the two real epochs before the reboot, nothing after it
    for f in valid:
        assert abs((f.lat or 0) - 48.15) < 0.01 and abs((f.lon or 0) - 11.585) < 0.01
