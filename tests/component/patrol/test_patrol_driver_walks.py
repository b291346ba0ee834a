"""GPS check-ins end to end: pty GPS simulator or a real capture -> GpsSource -> driver -> outbox.

Noisy walks (Gauss-Markov error, multipath outliers, fix loss)
through two checkpoints and past a third at 60 m; replays of real moving captures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.gps import GpsSource
from firmware_bridge.sim.gps_sim import GpsSimulator
from tests.kits.patrol import (
    at,
    checkin_payloads,
    cp,
    gps_done,
    outbox_events,
    record,
    rig,
    sha,
    task,
)

START_UTC = 1_764_000_000_000
# Metres north/east of the origin: north through A, then east through B. C is 60 m from the
# route at its closest (abeam of it on the first leg, and from the second leg).
ROUTE = [at(-60, 0), at(0, 0), at(60, 0), at(60, 140)]
A, B, C = at(0, 0), at(60, 80), at(0, 60)
EPOCHS = 200  # 260 m at 1.4 m/s is 186 s; then standing at the end


def lake_task(end: int | None = None) -> dict[str, Any]:
    kw = {} if end is None else {"end": end}
    return task("t-lake", [cp("A", A), cp("B", B), cp("C", C)], **kw)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11])
async def test_noisy_walk_checks_in_exactly_the_two_checkpoints_walked_through(
    tmp_path: Path, seed: int
) -> None:
    async with (
        GpsSimulator(
            walk=ROUTE,
            speed=50,  # 50x real time: 200 epochs in 4 s
            seed=seed,
            start_utc_ms=START_UTC,
            outlier_prob=0.03,  # multipath jumps of 25-80 m, not reflected in GST
            outage_prob=0.02,  # fix loss for 3-10 epochs
            paused=True,
        ) as sim,
        GpsSource(sim.port, 9600) as gps,
        rig(tmp_path / "state", record([lake_task()]), fixes=gps.fixes()) as (
            driver,
            outbox,
            _media,
            fed,
        ),
    ):
        sim.resume()
        await sim.wait_sent(EPOCHS)
        sim.pause()
        await gps_done(driver, gps, EPOCHS)
        payloads = await checkin_payloads(outbox)
        walked = await outbox_events(outbox, "patrol")
        # Point 1: a new task set (same ids, its window now over) keeps the check-ins made.
        await driver.apply_tasks(record([lake_task(end=START_UTC)], ver=2))
        await driver.drain()
        patrol = await outbox_events(outbox, "patrol")
        assert await checkin_payloads(outbox) == payloads
        outliers = driver.status()["patrol"]["engine"]["outliers"]
        truth_outliers = sum(e.outlier for e in sim.truth)
        losses = sum(not e.valid for e in sim.truth)
    bodies = [json.loads(p)["body"] for p in payloads]
    assert [b["checkpoint_id"] for b in bodies] == ["A", "B"]
    for b in bodies:
        assert b["method"] == "gps" and b["task_id"] == "t-lake" and b["staff_id"] == "s-1023"
        assert b["fix"] == "3d" and b["dist_m"] <= 25 and b["tag_uid"] is None
        assert b["photos"] == [] and b["gps_ts"] > START_UTC
    # Point 5: the chain starts at null and links each check-in to its predecessor's bytes.
    assert bodies[0]["prev"] is None and bodies[1]["prev"] == sha(payloads[0])
    # Point 6: started with the first check-in, nothing more while walking; after the window
    # closed, the unvisited C is missed and the task is overdue.
    assert [p["body"]["event"] for p in walked] == ["started"]
    events = [(p["body"]["event"], p["body"]["checkpoint_id"], p["body"]["done"]) for p in patrol]
    assert events == [("started", None, 0), ("checkpoint_missed", "C", 2), ("overdue", None, 2)]
    assert all(p["body"]["total"] == 3 for p in patrol)
    assert fed.feedback == ["ok", "ok"]  # one beep per check-in, nothing else
    # The walk really was noisy: jumps were generated and the gate rejected some, fixes lost.
    assert truth_outliers >= 1 and outliers >= 1 and losses >= 1


async def replay(path: Path, state: Path, tasks: dict[str, Any]) -> list[dict[str, Any]]:
    async with (
        GpsSimulator(replay=path, speed=50, paused=True) as sim,
        GpsSource(sim.port, 9600) as gps,
        rig(state, tasks, fixes=gps.fixes()) as (driver, outbox, _media, _fed),
    ):
        sim.resume()
        await sim.finished.wait()
        await gps_done(driver, gps, 1)
        return [e["body"] for e in await outbox_events(outbox, "checkin")]


@pytest.mark.parametrize(
    ("capture", "where", "dwell"),
    [
        # Haicom HI-305N (SiRF II), 2007: ~43 m walk, then ~35 s near this point.
        ("haicom-305N.log", (-27.2108, 153.05192), 10),
        # Quectel EG25-G modem: cold start, then ~200 m with large jumps; lingers here early.
        ("quectel-eg25-g.log", (36.76450, 31.41095), 5),
    ],
)
async def test_replay_of_a_real_moving_capture_checks_in_on_the_route(
    tmp_path: Path, shared_data: Path, capture: str, where: tuple[float, float], dwell: float
) -> None:
    far = at(0, 70, where)  # 70 m east: the capture never comes near it
    tasks = record(
        [
            task("t-cap", [cp("on-route", where, dwell=dwell)]),
            task("t-far", [cp("far", far, dwell=dwell)]),
        ]
    )
    checkins = await replay(shared_data / "nmea" / "gpsd" / capture, tmp_path / "state", tasks)
    assert [(c["task_id"], c["checkpoint_id"], c["method"]) for c in checkins] == [
        ("t-cap", "on-route", "gps")
    ]
    assert checkins[0]["dist_m"] <= 25 and checkins[0]["prev"] is None
    assert checkins[0]["gps_ts"] is not None and checkins[0]["sats"] >= 4
