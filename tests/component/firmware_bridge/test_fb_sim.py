"""The simulators the demo and the tests share."""

from __future__ import annotations

import asyncio
import itertools
import statistics

import pytest

from firmware_bridge.geo import distance_m
from firmware_bridge.sim import gps_sim, pn532_sim
from firmware_bridge.sim.gps_sim import GpsSimulator, WalkGenerator, split_epochs
from tests.kits.fb import NMEA_DIR, decode_fixes, require

WALK = [(31.2304, 121.4737), (31.2314, 121.4737), (31.2314, 121.4750)]  # ~111 m N, ~124 m E
START = 1_764_234_900_000


def test_walk_emits_valid_sentences_and_fixes_near_the_truth() -> None:
    gen = WalkGenerator(WALK, start_utc_ms=START, seed=7, outage_prob=0.0, outlier_prob=0.0)
    epochs = list(itertools.islice(gen.epochs(), 120))
    fixes, dec = decode_fixes(b"".join(e.data for e in epochs))
    assert dec.stats()["sentences"] == 3 * 120 and sum(dec.drops.values()) == 0
    assert len(fixes) == 120 and all(f.valid for f in fixes)
    assert [f.utc_ms for f in fixes] == [START + 1000 * k for k in range(120)]
    errors = [
        distance_m(e.true_lat, e.true_lon, f.lat or 0.0, f.lon or 0.0)
        for e, f in zip(epochs, fixes, strict=True)
    ]
    assert 1.0 < statistics.median(errors) < 8.0  # "a few metres"
    assert all(f.acc_m == pytest.approx(2.97, abs=0.05) for f in fixes)  # from GST
    # 1.4 m/s: after 120 s the walker has covered 168 m of the 235 m path.
    walked = distance_m(WALK[0][0], WALK[0][1], epochs[-1].true_lat, epochs[-1].true_lon)
    assert 100 < walked < 170
    assert fixes[10].speed_mps == pytest.approx(1.4, abs=0.01)


def test_walk_outliers_and_fix_loss_periods() -> None:
    gen = WalkGenerator(WALK, start_utc_ms=START, seed=11, outlier_prob=0.05, outage_prob=0.03)
    epochs = list(itertools.islice(gen.epochs(), 600))
    fixes, _ = decode_fixes(b"".join(e.data for e in epochs))
    assert len(fixes) == 600
    lost = [e for e in epochs if not e.valid]
    outliers = [e for e in epochs if e.outlier]
    assert lost and outliers
    for e, f in zip(epochs, fixes, strict=True):
        assert f.valid == e.valid  # the codec agrees with the generator's truth
        if e.outlier:
            assert f.lat is not None and f.lon is not None
            assert distance_m(e.true_lat, e.true_lon, f.lat, f.lon) > 15


def test_walk_is_deterministic_per_seed_and_stops_at_the_end() -> None:
    a = list(itertools.islice(WalkGenerator(WALK, start_utc_ms=START, seed=1).epochs(), 300))
    b = list(itertools.islice(WalkGenerator(WALK, start_utc_ms=START, seed=1).epochs(), 300))
    assert [e.data for e in a] == [e.data for e in b]
    assert (a[-1].true_lat, a[-1].true_lon) == WALK[-1]


def test_split_epochs_keeps_every_byte_but_comments() -> None:
    path = require(NMEA_DIR / "gpsd/gp-320fw-2019-04-07-coldboot.log")
    data = path.read_bytes()
    epochs = split_epochs(data)
    body = b"".join(line for line in data.splitlines(True) if not line.startswith(b"#"))
    assert b"".join(chunk for _, chunk in epochs) == body
    assert b"\x00" in body  # NULs replayed as captured
    assert len(epochs) > 10


async def test_replay_and_pause_through_the_pty() -> None:
    path = require(NMEA_DIR / "gpsd/bu353s4.log")
    async with GpsSimulator(replay=path, speed=100) as sim:
        await sim.wait_sent(5)
        sim.pause()
        sent = sim.epochs_sent
        await asyncio.sleep(0.05)  # five epoch periods at this speed
        assert sim.epochs_sent == sent  # held while paused
        sim.resume()
        await sim.finished.wait()
        assert sim.epochs_sent == len(split_epochs(path.read_bytes())) >= sent


def test_simulator_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        GpsSimulator()
    with pytest.raises(ValueError):
        WalkGenerator([])
    with pytest.raises(ValueError):
        pn532_sim.Pn532Simulator().present("0102")


@pytest.mark.parametrize("main", [gps_sim.main, pn532_sim.main])
def test_cli_help(main: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])  # type: ignore[operator]
    assert info.value.code == 0 and "python -m firmware_bridge.sim" in capsys.readouterr().out
