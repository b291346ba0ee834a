"""Shared pieces of the patrol driver tests (test_patrol_driver_*.py): a rig with a real outbox,
media store and driver in tmp_path, task documents, fixes, a JPEG folder, a client of the local
API, and the driver of a full agent with NFC taps on its PN532 simulator. No tests here."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from agent.clock import SystemClock
from agent.config.model import ModeProfile
from agent.errors import StoreFull
from agent.media import MediaStore
from agent.patrol.camera import Camera
from agent.patrol.config import ButtonsConfig, PatrolCameraConfig, PatrolConfig
from agent.patrol.driver import PatrolDriver
from agent.patrol.role import PatrolRole
from firmware_bridge.aio import boottime_ms
from firmware_bridge.geo import offset_deg
from firmware_bridge.gps import GpsSource
from firmware_bridge.types import ButtonPress, Fix, TagScan
from sync.messages import Stored
from sync.outbox import Outbox
from tests.kits.aio import wait_until

if TYPE_CHECKING:
    from agent.runtime.agent import Agent
    from firmware_bridge.sim.pn532_sim import Pn532Simulator

DEV = "pd-0042"
ORIGIN = (34.7790, 113.7312)  # Ruyi Lake, Zhengzhou
FAR_END = 4_000_000_000_000


def at(north_m: float, east_m: float, origin: tuple[float, float] = ORIGIN) -> tuple[float, float]:
    """The point north_m/east_m metres from `origin`."""
    return offset_deg(origin[0], origin[1], north_m, east_m)


def cp(
    cp_id: str,
    where: tuple[float, float],
    *,
    radius: float = 25,
    dwell: float = 10,
    tags: tuple[str, ...] = (),
    photo: bool = False,
) -> dict[str, Any]:
    """One §6 checkpoint."""
    return {
        "id": cp_id,
        "name": cp_id,
        "lat": where[0],
        "lon": where[1],
        "radius_m": radius,
        "dwell_s": dwell,
        "tags": list(tags),
        "photo": photo,
    }


def task(
    task_id: str,
    cps: list[dict[str, Any]],
    *,
    order: str = "any",
    start: int = 0,
    end: int = FAR_END,
    staff: str | None = "s-1023",
) -> dict[str, Any]:
    """One §6 task."""
    return {
        "id": task_id,
        "name": task_id,
        "staff_id": staff,
        "start_ms": start,
        "end_ms": end,
        "order": order,
        "checkpoints": cps,
    }


def record(tasks: list[dict[str, Any]], ver: int = 1) -> dict[str, Any]:
    """An applied tasks document as agent.state.tasks keeps it."""
    return {"id": f"doc-{ver}", "ver": ver, "iat": 0, "body": {"tasks": tasks}}


def fix_at(where: tuple[float, float], *, acc: float = 3.0, utc_ms: int | None = None) -> Fix:
    """A valid 3D fix at `where`, received now."""
    return Fix(
        valid=True,
        utc_ms=utc_ms if utc_ms is not None else int(time.time() * 1000),
        lat=where[0],
        lon=where[1],
        alt_m=42.5,
        quality=1,
        fix="3d",
        sats=9,
        hdop=0.9,
        acc_m=acc,
        mono_ms=boottime_ms(),
    )


async def stand(fed: Fed, where: tuple[float, float], seconds: int, utc_ms: int) -> int:
    """Push one fix a second (fix time from utc_ms) at `where`; return the next fix time."""
    for _ in range(seconds):
        await fed.fix(fix_at(where, utc_ms=utc_ms))
        utc_ms += 1000
    return utc_ms


def jpeg_folder(path: Path, n: int = 2) -> Path:
    """A folder of `n` small JPEG pictures (gradients) for a file: camera."""
    path.mkdir(parents=True, exist_ok=True)
    # Pillow alone: a patrol test needs no numpy (a patrol device has none either).
    across = Image.linear_gradient("L").rotate(90).resize((320, 240))
    down = Image.linear_gradient("L").resize((320, 240))
    for i in range(n):
        shifted = across.point(lambda v, i=i: (v + 40 * i) % 256)
        Image.merge("RGB", (shifted, down, Image.blend(across, down, 0.5))).save(
            path / f"img{i}.jpg", quality=90
        )
    return path


class Feed:
    """An async iterator the test pushes items into (a stand-in for a device's stream)."""

    def __init__(self) -> None:
        self._q: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)

    async def put(self, item: Any) -> None:
        """Hand one item to the driver."""
        await self._q.put(item)

    def close(self) -> None:
        """End the stream."""
        self._q.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[Any]:
        while (item := await self._q.get()) is not None:
            yield item


class Fed:
    """What a rig feeds the driver with and hears back."""

    def __init__(self) -> None:
        self.fixes: Feed = Feed()
        self.tags: Feed = Feed()
        self.presses: Feed = Feed()
        self.feedback: list[str] = []

    async def fix(self, f: Fix) -> None:
        """Push a fix."""
        await self.fixes.put(f)

    async def tag(self, uid: str) -> None:
        """Push a tag scan."""
        await self.tags.put(TagScan(uid=uid, mono_ms=0))

    async def press(self, button: str) -> None:
        """Push a button press."""
        await self.presses.put(ButtonPress(button=button, mono_ms=0))


async def outbox_events(outbox: Outbox, kind: str | None = None) -> list[dict[str, Any]]:
    """Decoded envelopes still in the outbox, in seq order (optionally of one kind)."""
    rows = await outbox.fetch((-1, -1), 100_000)
    out = [json.loads(r.payload) for r in rows if "/evt/" in r.topic]
    out = [e for e in out if kind is None or e["kind"] == kind]
    return sorted(out, key=lambda e: e["seq"])


async def checkin_payloads(outbox: Outbox) -> list[bytes]:
    """The exact stored bytes of every check-in still in the outbox, in seq order."""
    rows = await outbox.fetch((-1, -1), 100_000)
    found = [r.payload for r in rows if r.topic.endswith("/evt/checkin")]
    return sorted(found, key=lambda p: json.loads(p)["seq"])


def sha(payload: bytes) -> str:
    """SHA-256 hex, as the chain's `prev`."""
    return hashlib.sha256(payload).hexdigest()


async def outbox_topics(outbox: Outbox) -> list[tuple[str, int, int]]:
    """(topic, priority, rowid) of every row, in insertion order."""
    rows = await outbox.fetch((-1, -1), 100_000)
    return sorted(((r.topic, r.priority, r.rowid) for r in rows), key=lambda t: t[2])


@contextlib.asynccontextmanager
async def rig(
    state: Path,
    tasks: dict[str, Any] | None,
    *,
    fixes: Any = "feed",
    tags: Any = "feed",
    presses: Any = "feed",
    camera: Camera | None = None,
    profile: ModeProfile | None = None,
    settings: PatrolConfig | None = None,
    buttons: ButtonsConfig | None = None,
    clock: SystemClock | None = None,
) -> AsyncIterator[tuple[PatrolDriver, Outbox, MediaStore, Fed]]:
    """A real Outbox + MediaStore + PatrolDriver over `state`; "feed" inputs come from Fed."""
    fed = Fed()
    clk = clock or SystemClock(synced=lambda: True)
    prof = profile or ModeProfile()
    async with Outbox(state, DEV, stamp=clk.stamp, budget_bytes=1 << 30) as outbox:
        media = MediaStore(state, DEV, outbox, quota_bytes=16 << 20)
        driver = PatrolDriver(
            outbox=outbox,
            media=media,
            clock=clk,
            state_dir=state,
            staff_id="s-1023",
            profile=lambda: prof,
            tasks=tasks,
            fixes=fed.fixes if fixes == "feed" else fixes,
            tags=fed.tags if tags == "feed" else tags,
            presses=fed.presses if presses == "feed" else presses,
            feedback=fed.feedback.append,
            camera=camera,
            settings=settings or PatrolConfig(tick_s=0.05, reap_interval_s=0.2),
            buttons=buttons,
        )
        async with driver:
            yield driver, outbox, media, fed


def camera_cfg(folder: Path, **kw: Any) -> PatrolCameraConfig:
    """A file: camera over `folder`."""
    return PatrolCameraConfig(source=f"file:{folder}", **kw)


async def gps_done(driver: PatrolDriver, gps: GpsSource, at_least: int) -> None:
    """Until the driver has judged every fix the GPS source produced (at least `at_least`)."""

    def caught_up() -> bool:
        c = gps.counters()
        judged = driver.status()["patrol"]["engine"]["fixes"]
        return c["epochs"] >= at_least and judged + c["fixes_dropped"] >= c["epochs"]

    await wait_until(caught_up, what="driver caught up with the GPS")
    await driver.drain()


async def settle(driver: PatrolDriver, n_fixes: int) -> None:
    """Until the driver's engine has judged `n_fixes` fixes (and their batches are stored)."""
    await wait_until(
        lambda: driver.status()["patrol"]["engine"]["fixes"] >= n_fixes, what=f"{n_fixes} fixes"
    )
    await driver.drain()


async def journalled(outbox: Outbox) -> list[bytes]:
    """The check-in payloads the outbox journal holds, in seq order."""
    return [j.payload for j in await outbox.journal_after(None, "checkin")]


class RefusingAppend:
    """Fault injection: while `refusing`, the real outbox's append raises StoreFull (a full
    disk); otherwise it passes through. Counts the refusals."""

    def __init__(self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refusing = True
        self.refused = 0
        real = outbox.append

        async def append(kind: str, body: Any, **kw: Any) -> Stored:
            if self.refusing:
                self.refused += 1
                raise StoreFull("injected: database or disk is full")
            return await real(kind, body, **kw)

        monkeypatch.setattr(outbox, "append", append)


Reply = tuple[int, dict[str, str], Any]


async def http(
    where: Path | int, method: str, path: str, body: bytes | None = None, **headers: str
) -> Reply:
    """One HTTP/1.1 request on a unix socket path or a 127.0.0.1 port."""
    if isinstance(where, Path):
        reader, writer = await asyncio.open_unix_connection(str(where))
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", where)
    head = [f"{method} {path} HTTP/1.1", "Host: localhost"]
    if body is not None:
        head.append(f"Content-Length: {headers.pop('length', len(body))}")
    head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    head_raw, _, payload = rest.partition(b"\r\n\r\n")
    hdrs = dict(line.split(": ", 1) for line in head_raw.decode().split("\r\n") if line)
    return int(status_line.split()[1]), hdrs, json.loads(payload)


async def patrol_of(agent: Agent, pics: Path) -> PatrolDriver:
    """The agent's patrol driver (the patrol role wires it from the config)."""
    role = agent.role
    assert isinstance(role, PatrolRole), "the agent runs no patrol role"
    return role.driver


async def tap(sim: Pn532Simulator, driver: PatrolDriver, uid: str, checkins: int) -> None:
    """Hold tag `uid` to the reader until the driver has `checkins` check-ins, then take it away."""
    sim.present(uid)
    await wait_until(lambda: driver.reporter.counts.checkins == checkins, what=f"check-in {uid}")
    sim.remove()
    await sim.wait_commands(0x4A, sim.commands.count(0x4A) + 3)
    await driver.drain()
