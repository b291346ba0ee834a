"""PN532 driver against the pty PN532 simulator."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from firmware_bridge import pn532
from firmware_bridge.pn532_driver import Pn532Reader
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from firmware_bridge.types import TagScan
from tests.kits.fb import eventually, scaled_sleep

FAST = scaled_sleep(0.02)
LIST = pn532.CMD_IN_LIST_PASSIVE_TARGET


@asynccontextmanager
async def rig(
    sim_kw: dict[str, Any] | None = None, **reader_kw: Any
) -> AsyncIterator[tuple[Pn532Simulator, Pn532Reader]]:
    # The response bound is generous: a loaded CI machine must not turn a slow answer into an
    # error in tests that count errors; the timeout tests set their own.
    kw: dict[str, Any] = {"poll_interval_s": 0.005, "response_timeout_s": 2.0, "sleep": FAST}
    kw.update(reader_kw)
    async with (
        Pn532Simulator(**(sim_kw or {})) as sim,
        Pn532Reader(sim.port, 115200, **kw) as reader,
    ):
        await eventually(lambda: reader.status()["present"])
        yield sim, reader


async def polls_after(sim: Pn532Simulator, n: int) -> None:
    """Wait until the reader has sent `n` more InListPassiveTarget commands."""
    await sim.wait_commands(LIST, sim.commands.count(LIST) + n)


async def test_wakes_configures_checks_firmware_then_polls() -> None:
    async with rig() as (sim, reader):
        await polls_after(sim, 2)
        assert sim.awake
        assert sim.commands[:4] == [0x14, 0x02, 0x32, LIST]
        status = reader.status()
        assert status["present"] and status["firmware"] == "PN532 v1.6"
        assert status["errors"] == 0 and status["connected"]


@pytest.mark.parametrize("uid", ["82ACB95D", "0416C6C2D73881", "A0A1A2A3A4A5A6A7A8A9"])
async def test_one_scan_per_tap_while_the_tag_is_held(uid: str) -> None:
    async with rig() as (sim, reader):
        scans = reader.scans()
        sim.present(uid.lower())
        first = await anext(scans)
        assert first.uid == uid  # upper-case hex
        await polls_after(sim, 10)  # held on the reader for ten more polls
        assert reader.status()["scans"] == 1
        sim.remove()
        await polls_after(sim, 3)
        assert not reader.status()["tag_present"]
        sim.present(uid)
        second = await anext(scans)  # tapped again: a new scan
        assert second.uid == uid and reader.status()["scans"] == 2


async def test_a_different_tag_is_a_new_scan_immediately() -> None:
    async with rig() as (sim, reader):
        scans = reader.scans()
        sim.present("82ACB95D")
        assert (await anext(scans)).uid == "82ACB95D"
        sim.present("0416C6C2D73881")
        assert (await anext(scans)).uid == "0416C6C2D73881"


@pytest.mark.parametrize(
    "sim_kw",
    [
        {"chunk_size": 1},
        {"chunk_size": 3},
        {"ack_with_response": True},
        {"ack_with_response": True, "chunk_size": 5},
    ],
)
async def test_ack_and_response_in_one_read_or_split_over_many(sim_kw: dict[str, Any]) -> None:
    async with rig(sim_kw) as (sim, reader):
        sim.present("04A1B2C3D4E5F6")
        scan = await anext(reader.scans())
        assert scan.uid == "04A1B2C3D4E5F6" and reader.status()["errors"] == 0


async def test_silent_reader_times_out_is_reported_and_recovers() -> None:
    async with rig(fail_limit=2, response_timeout_s=0.2) as (sim, reader):
        sim.silent = True
        await eventually(lambda: not reader.status()["present"])
        status = reader.status()
        assert status["timeouts"] >= 2 and "timeout" in status["last_error"]
        sim.silent = False
        await eventually(lambda: reader.status()["present"])
        sim.present("82ACB95D")
        assert (await anext(reader.scans())).uid == "82ACB95D"


async def test_reader_that_needs_wakeup_after_power_cycle_is_woken_again() -> None:
    async with rig() as (sim, reader):
        sim.unplug()
        await eventually(lambda: not reader.status()["connected"])
        assert not reader.status()["present"]
        sim.replug()  # comes back asleep
        await eventually(lambda: reader.status()["present"])
        assert sim.awake and reader.status()["reopenings"] == 1
        sim.present("82ACB95D")
        assert (await anext(reader.scans())).uid == "82ACB95D"


async def test_missing_reader_is_retried_never_fatal(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "ttyNFC")
    async with Pn532Reader(path, 115200, sleep=FAST, poll_interval_s=0.005) as reader:
        await eventually(lambda: reader.status()["link_error"] is not None)
        status = reader.status()
        assert not status["present"] and not status["connected"]
        async with Pn532Simulator(link_path=path) as sim:
            await eventually(lambda: reader.status()["present"])
            sim.present("82ACB95D")
            assert (await anext(reader.scans())).uid == "82ACB95D"


async def test_wrong_chip_is_not_present() -> None:
    firmware = bytes((0x31, 0x01, 0x06, 0x07))  # a PN531 answers, not a PN532
    async with (
        Pn532Simulator(firmware=firmware) as sim,
        Pn532Reader(sim.port, 115200, sleep=FAST) as reader,
    ):
        await eventually(lambda: reader.status()["errors"] >= 2)
        assert not reader.status()["present"]
        assert "not a PN532" in reader.status()["last_error"]


async def test_on_scan_hook_runs_before_the_scan_is_consumed() -> None:
    seen: list[tuple[str, int]] = []

    def hook(scan: TagScan) -> None:
        seen.append((scan.uid, reader.status()["scans"]))

    async with rig(on_scan=hook, clock_ms=lambda: 1234) as (sim, reader):
        sim.present("82ACB95D")
        await eventually(lambda: bool(seen))
        assert seen == [("82ACB95D", 1)]  # called in the scan path, no consumer involved
        scan = await anext(reader.scans())
        assert scan == TagScan(uid="82ACB95D", mono_ms=1234)


async def test_broken_hook_does_not_stop_the_reader() -> None:
    def hook(scan: TagScan) -> None:
        raise RuntimeError("boom")

    async with rig(on_scan=hook) as (sim, reader):
        sim.present("82ACB95D")
        assert (await anext(reader.scans())).uid == "82ACB95D"
        await polls_after(sim, 2)
        assert reader.status()["present"]
