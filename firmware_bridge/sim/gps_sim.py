"""pty-backed GPS receiver: replays a capture at its epoch pace, or walks along points with noise.

Interface:
    async with GpsSimulator(replay="capture.log", speed=20) as sim:     # or walk=[(lat, lon), ...]
        GpsSource(sim.port, 9600)          # sim.port is a symlink to the current pty slave
        sim.unplug(); sim.replug()         # device vanishes / comes back at the same path
        sim.pause(); sim.resume()          # hold output (GpsSimulator(paused=True) starts held)
        await sim.wait_sent(n)             # until n epochs were written
        sim.epochs_sent, sim.truth         # walk mode: the WalkEpoch list written so far
    split_epochs(capture_bytes) -> list[(tod_ms | None, bytes)]    # byte-exact, comments dropped
    WalkGenerator(points, seed=1, ...).epochs() -> Iterator[WalkEpoch]   # pure, seeded

Replay keeps every byte of the capture (garbage, NULs, broken lines) except `#` comment lines;
the delay between epochs is the capture's own time step (1 s when unknown or above 10 s),
divided by `speed`. The walk goes along the points at `speed_mps` and emits GGA + RMC (+ GST)
at `rate_hz` with valid checksums. Its error model: a first-order Gauss-Markov offset per axis
(standard deviation `noise_m`, correlation time `corr_s`, like real receivers whose error
wanders rather than jumps), an occasional multipath outlier of 25-80 m for one epoch (not
reflected in GST, as receivers rarely know), and fix-loss periods (GGA quality 0, RMC V).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import random
import re
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from firmware_bridge.aio import Sleep, cancel_task
from firmware_bridge.geo import distance_m
from firmware_bridge.nmea import encode_sentence
from firmware_bridge.sim.pty_port import PtyPort

_TIMED = re.compile(rb"\$[A-Z]{2}(?:GGA|RMC),(\d{2})(\d{2})(\d{2})(\.\d+)?,")
M_PER_DEG = 111_320.0
KNOTS_PER_MPS = 3600.0 / 1852.0


def split_epochs(data: bytes) -> list[tuple[int | None, bytes]]:
    """Group capture lines into epochs by the GGA/RMC second; `#` comment lines dropped."""
    groups: list[tuple[int | None, bytearray]] = []
    for line in data.splitlines(keepends=True):
        if line.startswith(b"#"):
            continue
        match = _TIMED.search(line)
        tod = None
        if match:
            h, m, s = (int(g) for g in match.groups()[:3])
            tod = ((h * 60 + m) * 60 + s) * 1000 + int(float(match.group(4) or 0) * 1000)
        last = groups[-1][0] if groups else None
        if not groups or (tod is not None and last is not None and tod // 1000 != last // 1000):
            groups.append((tod, bytearray()))
        elif tod is not None and last is None:
            groups[-1] = (tod, groups[-1][1])
        groups[-1][1].extend(line)
    return [(tod, bytes(chunk)) for tod, chunk in groups]


def _step_s(prev: int | None, nxt: int | None) -> float:
    if prev is None or nxt is None:
        return 1.0
    delta = ((nxt - prev) % 86_400_000) / 1000.0
    return delta if 0 < delta <= 10 else 1.0


@dataclass(frozen=True, slots=True)
class WalkEpoch:
    """One generated epoch: the truth, what was reported, and the bytes sent."""

    utc_ms: int
    true_lat: float
    true_lon: float
    lat: float | None
    lon: float | None
    valid: bool
    outlier: bool
    data: bytes


def _dm(value: float, deg_digits: int) -> str:
    """Degrees to NMEA ddmm.mmmmm (dddmm.mmmmm for longitude)."""
    total = round(abs(value) * 60, 5)
    deg, minutes = divmod(total, 60)
    return f"{int(deg):0{deg_digits}d}{minutes:08.5f}"


class WalkGenerator:
    """Seeded, pure generator of a walk along points with realistic receiver error."""

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        *,
        speed_mps: float = 1.4,
        rate_hz: float = 1.0,
        start_utc_ms: int | None = None,
        noise_m: float = 3.0,
        corr_s: float = 20.0,
        outlier_prob: float = 0.02,
        outage_prob: float = 0.01,
        outage_epochs: tuple[int, int] = (3, 10),
        gst: bool = True,
        talker: str = "GP",
        alt_m: float = 20.0,
        seed: int = 0,
    ) -> None:
        if not points:
            raise ValueError("a walk needs at least one point")
        self.points = list(points)
        self.speed = speed_mps
        self.period_s = 1.0 / rate_hz
        self.start_utc_ms = int(time.time() * 1000) if start_utc_ms is None else start_utc_ms
        self.noise_m = noise_m
        self.phi = math.exp(-self.period_s / corr_s) if corr_s > 0 else 0.0
        self.outlier_prob = outlier_prob
        self.outage_prob = outage_prob
        self.outage_epochs = outage_epochs
        self.gst = gst
        self.talker = talker
        self.alt_m = alt_m
        self.rng = random.Random(seed)
        self._cum = [0.0]
        for (a_lat, a_lon), (b_lat, b_lon) in zip(self.points, self.points[1:], strict=False):
            self._cum.append(self._cum[-1] + distance_m(a_lat, a_lon, b_lat, b_lon))

    def position(self, dist_m: float) -> tuple[float, float, float]:
        """Lat, lon and course (degrees) after walking `dist_m` along the points."""
        pts, cum = self.points, self._cum
        if len(pts) == 1 or dist_m >= cum[-1]:
            return pts[-1][0], pts[-1][1], self._course(len(pts) - 2)
        i = max(0, next(k for k in range(1, len(cum)) if cum[k] > dist_m) - 1)
        seg = cum[i + 1] - cum[i]
        f = (dist_m - cum[i]) / seg if seg > 0 else 0.0
        (a_lat, a_lon), (b_lat, b_lon) = pts[i], pts[i + 1]
        return a_lat + f * (b_lat - a_lat), a_lon + f * (b_lon - a_lon), self._course(i)

    def _course(self, i: int) -> float:
        if i < 0 or i + 1 >= len(self.points):
            return 0.0
        (a_lat, a_lon), (b_lat, b_lon) = self.points[i], self.points[i + 1]
        east = (b_lon - a_lon) * math.cos(math.radians(a_lat))
        return math.degrees(math.atan2(east, b_lat - a_lat)) % 360

    def epochs(self) -> Iterator[WalkEpoch]:
        """Endless epochs; after the last point the receiver stands still (with noise)."""
        rng, sigma = self.rng, self.noise_m
        north = rng.gauss(0, sigma)
        east = rng.gauss(0, sigma)
        outage_left = 0
        k = 0
        while True:
            t_s = k * self.period_s
            utc_ms = self.start_utc_ms + round(t_s * 1000)
            walked = self.speed * t_s
            lat, lon, course = self.position(walked)
            moving = walked < self._cum[-1]
            innovation = sigma * math.sqrt(1 - self.phi**2)
            north = self.phi * north + rng.gauss(0, innovation)
            east = self.phi * east + rng.gauss(0, innovation)
            if outage_left == 0 and rng.random() < self.outage_prob:
                outage_left = rng.randint(*self.outage_epochs)
            outlier = outage_left == 0 and rng.random() < self.outlier_prob
            dn, de = north, east
            if outlier:
                bearing, extra = rng.uniform(0, 2 * math.pi), rng.uniform(25, 80)
                dn, de = dn + extra * math.cos(bearing), de + extra * math.sin(bearing)
            if outage_left:
                outage_left -= 1
                data = self._sentences(utc_ms, None, None, 0.0, 0.0)
                yield WalkEpoch(utc_ms, lat, lon, None, None, False, False, data)
            else:
                r_lat = lat + dn / M_PER_DEG
                r_lon = lon + de / (M_PER_DEG * math.cos(math.radians(lat)))
                speed = self.speed if moving else 0.0
                data = self._sentences(utc_ms, r_lat, r_lon, speed, course)
                yield WalkEpoch(utc_ms, lat, lon, r_lat, r_lon, True, outlier, data)
            k += 1

    def _sentences(
        self, utc_ms: int, lat: float | None, lon: float | None, speed: float, course: float
    ) -> bytes:
        when = dt.datetime.fromtimestamp(utc_ms / 1000, dt.UTC)
        hms = when.strftime("%H%M%S") + f".{when.microsecond // 10000:02d}"
        date = when.strftime("%d%m%y")
        t = self.talker
        if lat is None or lon is None:
            gga = [hms, "", "", "", "", "0", "00", "99.99", "", "", "", "", "", ""]
            rmc = [hms, "V", "", "", "", "", "", "", date, "", "", "N"]
            return encode_sentence(t + "GGA", gga) + encode_sentence(t + "RMC", rmc)
        ns, ew = ("N" if lat >= 0 else "S"), ("E" if lon >= 0 else "W")
        hdop = 0.8 + 0.6 * self.rng.random()
        sats = self.rng.randint(7, 12)
        alt = self.alt_m + self.rng.gauss(0, 1.5 * self.noise_m)
        pos = [_dm(lat, 2), ns, _dm(lon, 3), ew]
        gga = [hms, *pos, "1", f"{sats:02d}", f"{hdop:.1f}", f"{alt:.1f}", "M", "0.0", "M", "", ""]
        knots = f"{speed * KNOTS_PER_MPS:.3f}"
        rmc = [hms, "A", *pos, knots, f"{course:.1f}" if speed else "", date, "", "", "A"]
        out = encode_sentence(t + "RMC", rmc) + encode_sentence(t + "GGA", gga)
        if self.gst:
            sd = self.noise_m / math.sqrt(2)
            numbers = (self.noise_m, sd * 1.2, sd * 0.8, 0.0, sd, sd, 1.5 * self.noise_m)
            out += encode_sentence(t + "GST", [hms, *(f"{x:.1f}" for x in numbers)])
        return out


class GpsSimulator:
    """Writes NMEA into a pty at epoch pace from a task it owns."""

    def __init__(
        self,
        *,
        replay: str | Path | bytes | None = None,
        walk: Sequence[tuple[float, float]] | None = None,
        speed: float = 1.0,
        loop: bool = False,
        link_path: str | None = None,
        sleep: Sleep = asyncio.sleep,
        paused: bool = False,
        **walk_options: Any,
    ) -> None:
        if (replay is None) == (walk is None):
            raise ValueError("give exactly one of replay= or walk=")
        self._replay = Path(replay).read_bytes() if isinstance(replay, str | Path) else replay
        self._walk = WalkGenerator(walk, **walk_options) if walk is not None else None
        self._speed = speed
        self._loop = loop
        self._sleep = sleep
        self._pty = PtyPort(link_path, name="GPS")
        self._task: asyncio.Task[None] | None = None
        self._sent = asyncio.Event()
        self.epochs_sent = 0
        self.truth: list[WalkEpoch] = []
        self.finished = asyncio.Event()
        self._running = asyncio.Event()
        if not paused:
            self._running.set()

    @property
    def port(self) -> str:
        """The stable device path (symlink) to open."""
        return self._pty.path

    async def __aenter__(self) -> Self:
        self._pty.plug()
        self._task = asyncio.create_task(self._run(), name="gps-sim")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        try:
            await cancel_task(task)
        finally:
            self._pty.close()

    def unplug(self) -> None:
        """The receiver disappears (its epochs keep running, unseen)."""
        self._pty.unplug()

    def replug(self) -> None:
        """The receiver comes back at the same path (a new pty behind the symlink)."""
        self._pty.plug()

    def pause(self) -> None:
        """Hold output before the next epoch (to line tests up with a reader)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue writing epochs."""
        self._running.set()

    async def wait_sent(self, n: int) -> None:
        """Return once at least `n` epochs were written since the start."""
        while self.epochs_sent < n:
            self._sent.clear()
            await self._sent.wait()

    async def _run(self) -> None:
        if self._walk is not None:
            for epoch in self._walk.epochs():
                await self._send(epoch.data)
                self.truth.append(epoch)
                await self._sleep(self._walk.period_s / self._speed)
        assert self._replay is not None
        epochs = split_epochs(self._replay)
        while True:
            prev: int | None = None
            for tod, chunk in epochs:
                if self.epochs_sent:
                    await self._sleep(_step_s(prev, tod) / self._speed)
                prev = tod if tod is not None else prev
                await self._send(chunk)
            if not self._loop:
                self.finished.set()
                return

    async def _send(self, data: bytes) -> None:
        await self._running.wait()
        self._pty.write(data)
        self.epochs_sent += 1
        self._sent.set()


def _points(text: str) -> list[tuple[float, float]]:
    pairs = [p.split(",") for p in text.split(";") if p.strip()]
    return [(float(a), float(b)) for a, b in pairs]


async def _main(args: argparse.Namespace) -> None:
    if args.replay:
        sim = GpsSimulator(
            replay=args.replay, speed=args.speed, loop=args.loop, link_path=args.link
        )
    else:
        sim = GpsSimulator(
            walk=_points(args.walk),
            speed=args.speed,
            link_path=args.link,
            seed=args.seed,
            noise_m=args.noise,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # leave through __aexit__: pty and temp dir go
    async with sim:
        print(f"GPS simulator on {sim.port} (Ctrl-C to stop)", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m firmware_bridge.sim.gps --replay FILE | --walk 'lat,lon;lat,lon'`."""
    parser = argparse.ArgumentParser(prog="python -m firmware_bridge.sim.gps")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--replay", help="capture file to replay")
    src.add_argument("--walk", help="points to walk along: 'lat,lon;lat,lon;...'")
    parser.add_argument("--speed", type=float, default=1.0, help="time acceleration factor")
    parser.add_argument("--loop", action="store_true", help="replay forever")
    parser.add_argument("--link", default=None, help="symlink path to create (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=3.0, help="walk noise sigma, metres")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
