"""Which project files one GPS check-in enters, in order: serial bytes to the PUBACK.

Run: .venv/bin/python bench/trace_checkin.py

A real patrol agent (in this process), a real Mosquitto, the pty GPS simulator walking into a
checkpoint. Calls are recorded only in the loops a check-in travels through (the GPS pump, the
patrol fix loop, the outbox writer and deleter, the publisher, the MQTT link, and the threads
they hand work to), from the walker's start (outside the radius) until the check-in reaches
central; other loops (status, ticks, modes) run too but are not counted. Prints each file
once, in the order it was first entered, and the count (docs/architecture.md's check-in table).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.clock import SystemClock  # noqa: E402
from agent.demo.broker import Broker  # noqa: E402
from agent.runtime.agent import Agent  # noqa: E402
from firmware_bridge.geo import offset_deg  # noqa: E402
from firmware_bridge.sim.gps_sim import GpsSimulator  # noqa: E402
from tests.kits.agents import DEV, OpsKey, make_config  # noqa: E402
from tests.kits.mqtt import Watcher  # noqa: E402

CP = (34.7631, 113.7735)  # Ruyi Lake, Zhengzhou
PATH_LOOPS = ("gps-pump", "gps-link", "patrol-fixes", "patrol-batch", "outbox-", "mqtt-")
PACKAGES = ("agent", "sync", "firmware_bridge")


class PathRecorder:
    """First entry of each project file, by calls made in the check-in path's loops."""

    def __init__(self) -> None:
        self.on = False
        self.files: list[str] = []
        self._seen: set[str] = set()

    def _on_path(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return True  # the SQLite writer's and paho's threads work only for the path here
        try:
            task = asyncio.current_task()
        except RuntimeError:
            return False
        return task is not None and task.get_name().startswith(PATH_LOOPS)

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.on or event != "call":
            return
        name = frame.f_code.co_filename
        if name in self._seen or not name.startswith(str(ROOT)):
            return
        rel = Path(name).relative_to(ROOT).as_posix()
        if rel.split("/")[0] in PACKAGES and self._on_path():
            self._seen.add(name)
            self.files.append(rel)


async def main() -> None:
    rec = PathRecorder()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker")
        broker.start()
        try:
            await _walk_in(Path(tmp), broker, rec)
        finally:
            broker.stop()
    for i, f in enumerate(rec.files, 1):
        print(f"{i:2d}  {f}")
    print(f"{len(rec.files)} project files entered by one GPS check-in")


async def _walk_in(tmp: Path, broker: Broker, rec: PathRecorder) -> None:
    key = OpsKey()
    far = offset_deg(*CP, 120.0, 0.0)
    tasks = {
        "tasks": [
            {
                "id": "t1",
                "name": "east shore",
                "staff_id": None,
                "start_ms": 0,
                "end_ms": 4_102_444_800_000,
                "order": "any",
                "checkpoints": [
                    {
                        "id": "cp-a",
                        "name": "pier",
                        "lat": CP[0],
                        "lon": CP[1],
                        "radius_m": 25,
                        "dwell_s": 3,
                        "tags": [],
                        "photo": False,
                    }
                ],
            }
        ]
    }
    central = Watcher(broker.host, broker.port)
    central.publish(f"grid/v1/{DEV}/desired/tasks", key.doc("tasks", tasks, ver=1), retain=True)
    # Set before the agent starts: threads (the outbox's writer, paho's) inherit it at start.
    sys.setprofile(rec)
    threading.setprofile(rec)
    async with GpsSimulator(walk=[far, CP, CP], speed=15) as gps:
        cfg = make_config(tmp / "state", broker.port, key, gps={"port": gps.port})
        async with Agent(cfg, clock=SystemClock(synced=lambda: True)) as agent:
            while agent.tasks_ver != 1 or agent.link.session is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the tasks document's ack is out of the way
            rec.on = True
            try:
                while not any(t.endswith("/evt/checkin") for t, *_ in central.messages):
                    await asyncio.sleep(0.02)
            finally:
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]
    central.close()


if __name__ == "__main__":
    asyncio.run(main())
