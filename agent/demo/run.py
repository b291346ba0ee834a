"""`edge-agent demo`: a local broker, a patrol device and a camera gateway, an operator's view.

Both agents run in this process as two `Agent` objects on one event loop: nothing can be left
behind but the broker, which is stopped in a `finally`; one Ctrl-C stops everything at once; and
the demo can read each agent's outbox to say what is still queued. OpenCV's work runs on the
gateway pipeline's own threads, so the patrol device is not held up by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rich.console import Console
from rich.live import Live

from agent.demo import scene
from agent.demo.broker import Broker
from agent.demo.central import Central, lost_total, summary
from agent.demo.clip import camera_section, write_clip
from agent.runtime.agent import Agent
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from sync.verify import b64url_encode

DEFAULT_SECONDS = 90.0
CUT_AT_S, CUT_FOR_S = 22.0, 12.0  # the broker is down from 22 s to 34 s
DRAIN_S = 20.0  # after the end: how long to let the outboxes empty before the summary


class Demo:
    """The timeline: tasks, an incident, a mode switch and back, a broker cut, an NFC tap."""

    def __init__(
        self, broker: Broker, central: Central, key: Ed25519PrivateKey, nfc: Pn532Simulator
    ) -> None:
        self.broker, self.central, self.key, self.nfc = broker, central, key, nfc
        self.phase = "starting"

    def _mode(self, mode: str) -> None:
        body = {"mode": mode, "reason": "demo drill"}
        doc = scene.signed(self.key, "mode", body, {"zone": "ruyihu"})
        self.central.publish("grid/v1/zone/ruyihu/desired/mode", doc, retain=True)

    async def run(self, patrol: Agent, t0: float) -> None:
        """Each step at its time from t0 (monotonic)."""

        async def at(s: float, phase: str) -> None:
            await asyncio.sleep(max(0.0, t0 + s - time.monotonic()))
            self.phase = phase
            self.central.note(phase)

        now = int(time.time() * 1000)
        doc = scene.signed(self.key, "tasks", scene.tasks_body(now), {"dev": scene.DEV})
        self.central.publish(f"grid/v1/{scene.DEV}/desired/tasks", doc, retain=True)
        await at(1, "signed tasks sent to the patrol device; the worker walks the east shore")
        await at(6, "incident reported through the device's local API")
        sock = patrol.cfg.device.state_dir / "api.sock"
        if sock.exists():
            await scene.api_incident(sock)
        await at(10, "zone ruyihu switches to EMERGENCY (signed mode document)")
        self._mode("emergency")
        await at(CUT_AT_S, f"broker cut for {CUT_FOR_S:g} s: both devices keep working offline")
        await asyncio.to_thread(self.broker.stop)
        await at(CUT_AT_S + 4, "offline, the worker taps the Bridge tag (NFC): check-in + photo")
        self.nfc.present(scene.CHECKPOINTS[1][4])
        await asyncio.sleep(2)
        self.nfc.remove()
        await at(CUT_AT_S + CUT_FOR_S, "broker back: both devices catch up")
        await asyncio.to_thread(self.broker.start)
        await at(CUT_AT_S + CUT_FOR_S + 8, "zone ruyihu back to NORMAL")
        self._mode("normal")
        await at(CUT_AT_S + CUT_FOR_S + 10, "running on; Ctrl-C or --seconds ends with the summary")


async def _drain(agents: list[Agent], broker: Broker, limit_s: float) -> None:
    # The summary counts what was delivered: give the outboxes a moment to empty first.
    if broker.proc is None:
        await asyncio.to_thread(broker.start)
    deadline = time.monotonic() + limit_s
    # Bounded look at two outboxes' depth, once at the end: no event exists for "both empty".
    while time.monotonic() < deadline and any(a.outbox.depth for a in agents):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the last PUBACKed messages reach central's subscription


async def _show(
    console: Console,
    central: Central,
    demo: Demo,
    stop: asyncio.Event,
    task: asyncio.Task[None],
    agents: list[Agent],
    broker: Broker,
    t0: float,
    limit: float,
) -> None:
    """The live view in a terminal; without one (piped, CI), one plain line per event as it
    arrives (a live view would only print its last screen)."""
    live = Live(central.view(demo.phase), console=console, refresh_per_second=2)
    tty = console.is_terminal

    def update(phase: str) -> None:
        if tty:
            live.update(central.view(phase))
            return
        for line in central.take_lines():
            print(line, flush=True)

    with live if tty else contextlib.nullcontext():
        while not stop.is_set() and time.monotonic() - t0 < limit:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            update(demo.phase)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        demo.phase = "stopping: waiting for the outboxes to empty"
        update(demo.phase)
        await _drain(agents, broker, DRAIN_S)
        update("done")


async def main(seconds: float | None, workdir: str | None, verbose: bool = False) -> int:
    """Run the demo for `seconds` (default 90) or until Ctrl-C; 0 when nothing was lost."""
    console = Console()
    if not verbose:
        logging.getLogger().setLevel(logging.CRITICAL)  # the live view says what matters
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    key = Ed25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    clip = await asyncio.to_thread(write_clip, base / "clip" / "lake.avi")
    await asyncio.to_thread(scene.write_demo_photo, base / "camera")
    broker = Broker(base / "broker")
    await asyncio.to_thread(broker.start)
    console.print(f"[bold]Mosquitto[/] on 127.0.0.1:{broker.port}; everything under {base}")
    central = Central(broker.host, broker.port, [scene.DEV, scene.GW], verbose)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agents: list[Agent] = []
    try:
        async with (
            GpsSimulator(
                walk=scene.route(),
                speed_mps=1.6,
                noise_m=2.0,
                outlier_prob=0.0,
                outage_prob=0.0,
                seed=7,
            ) as gps,
            Pn532Simulator() as nfc,
        ):
            pcfg = scene.patrol_config(base, broker.port, public, str(gps.port), str(nfc.port))
            gcfg = scene.gateway_config(base, broker.port, public, camera_section(clip))
            async with Agent(pcfg) as patrol, Agent(gcfg) as gateway:
                agents = [patrol, gateway]
                demo = Demo(broker, central, key, nfc)
                t0 = time.monotonic()
                task = asyncio.create_task(demo.run(patrol, t0), name="demo-timeline")
                limit = DEFAULT_SECONDS if seconds is None else seconds
                await _show(console, central, demo, stop, task, agents, broker, t0, limit)
        # Read once both agents are closed: nothing is produced after this (the summary's
        # counts could otherwise include an event stored after the reading).
        produced = {a.cfg.device.id: a.outbox.seq for a in agents}
        queued = {a.cfg.device.id: a.outbox.depth for a in agents}
        await asyncio.sleep(0.5)  # the last messages published before the close reach central
        console.print()
        console.print(summary(central, produced, queued))
        lost = lost_total(central)
        console.print("[bold green]nothing lost[/]" if not lost else f"[red]{lost} lost[/]")
        return 0 if not lost else 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        central.close()
        await asyncio.to_thread(broker.stop)
