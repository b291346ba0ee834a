"""`edge-agent demo`: local Mosquitto, simulated devices, signed documents, a central view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console

from agent.app import Agent
from agent.config import Config, parse
from agent.localbroker import Broker
from firmware_bridge.sim.gps_sim import GpsSimulator
from firmware_bridge.sim.pn532_sim import Pn532Simulator
from sync.verify import b64url_encode, sign

log = logging.getLogger(__name__)
DEV = "pd-demo"
# Three checkpoints along Ruyi Lake's east shore (WGS-84), ~60 m apart.
CHECKPOINTS = [
    ("cp-pier", "Pier", 34.77905, 113.73120, "04A1B2C3"),
    ("cp-bridge", "Bridge", 34.77960, 113.73130, "04D4E5F6"),
    ("cp-plaza", "Plaza", 34.78012, 113.73141, "0416C6C2D73881"),
]


class Central:
    """The central side's view: subscribes to the device's topics and prints what arrives."""

    def __init__(self, host: str, port: int, console: Console) -> None:
        self.console = console
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="demo-central")
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(f"grid/v1/{DEV}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        topic = msg.topic.removeprefix(f"grid/v1/{DEV}/")
        if topic.startswith("desired/") or topic == "cmd":
            self.console.print(f"[dim]{topic}  (signed document, {len(msg.payload)} bytes)[/dim]")
            return
        if topic.startswith("media/"):
            self.console.print(f"[dim]{topic}  {len(msg.payload)} bytes[/dim]")
            return
        try:
            data = json.loads(msg.payload)
        except ValueError:
            self.console.print(f"[red]{topic}: not JSON[/red]")
            return
        if isinstance(data, dict) and "body" in data and "seq" in data:
            hist = " [yellow]hist[/yellow]" if data.get("hist") else ""
            text = json.dumps(data["body"], ensure_ascii=False)
            self.console.print(f"[bold cyan]{topic}[/] seq={data['seq']}{hist} {text}")
        else:
            self.console.print(f"[green]{topic}[/] {json.dumps(data, ensure_ascii=False)}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish a document as the operations centre would."""
        self.client.publish(topic, payload, qos=1, retain=retain)

    def close(self) -> None:
        """Disconnect."""
        self.client.loop_stop()
        self.client.disconnect()


def demo_config(workdir: Path, port: int, public_key: str, gps: str, nfc: str) -> Config:
    """The embedded defaults: a patrol device on the local broker with simulated devices."""
    photos = workdir / "camera"
    return parse(
        {
            "device": {
                "id": DEV,
                "role": "patrol",
                "zones": ["ruyihu", "ruyihu.cbd"],
                "state_dir": str(workdir / "state"),
                "staff_id": "s-1023",
            },
            "broker": {"host": "127.0.0.1", "port": port},
            "gps": {"port": gps, "baud": 9600},
            "nfc": {"port": nfc, "baud": 115200},
            "camera": {"source": f"file:{photos}", "width": None, "height": None},
            "trust": {"ops_keys": [{"kid": "ops-demo", "public_key": public_key}]},
            "modes": {"profiles": {"normal": {"status_interval_s": 20}}},
        }
    )


def signed(
    key: Ed25519PrivateKey,
    typ: str,
    body: dict[str, Any],
    target: dict[str, str],
    exp: int | None = None,
) -> bytes:
    """A §6 document signed with the demo's operator key."""
    now = int(time.time() * 1000)
    payload = {
        "typ": typ,
        "id": str(uuid.uuid4()),
        "target": target,
        "ver": now,
        "iat": now,
        "exp": exp,
        "body": body,
    }
    return sign(payload, "ops-demo", key)


def tasks_body(now_ms: int) -> dict[str, Any]:
    """One sequence task over the demo checkpoints; the second asks for a photo."""
    return {
        "tasks": [
            {
                "id": "t-demo",
                "name": "Ruyi Lake east shore",
                "staff_id": "s-1023",
                "start_ms": now_ms - 60_000,
                "end_ms": now_ms + 3_600_000,
                "order": "sequence",
                "checkpoints": [
                    {
                        "id": i,
                        "name": n,
                        "lat": la,
                        "lon": lo,
                        "radius_m": 25,
                        "dwell_s": 10,
                        "tags": [t],
                        "photo": i == "cp-bridge",
                    }
                    for i, n, la, lo, t in CHECKPOINTS
                ],
            }
        ]
    }


def route() -> list[tuple[float, float]]:
    """Walk to the first two checkpoints and linger ~20 s at each, then head for the third."""
    points: list[tuple[float, float]] = [(34.77860, 113.73110)]
    for _, _, lat, lon, _ in CHECKPOINTS[:2]:
        d = 0.00002  # ~2 m: small loops keep the walker inside the radius for a while
        for _ in range(4):
            points += [(lat + d, lon), (lat, lon + d), (lat - d, lon), (lat, lon - d)]
    points.append((CHECKPOINTS[2][2] - 0.0003, CHECKPOINTS[2][3]))
    return points


def write_demo_photo(folder: Path) -> None:
    """A picture for the file camera (a real street scene when ../shared/data is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "images" / "yolov5_bus.jpg"
    if shared.exists():
        (folder / "scene.jpg").write_bytes(shared.read_bytes())
        return
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (640, 480), (90, 120, 150))
    ImageDraw.Draw(img).rectangle((200, 150, 440, 400), fill=(200, 180, 60))
    img.save(folder / "scene.jpg", quality=85)


async def api_incident(sock: Path) -> str:
    """POST an incident to the device's local API (what a handheld UI would do)."""
    body = json.dumps(
        {"category": "facility", "level": 3, "note": "street lamp out", "photo": True}
    ).encode()
    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(
        b"POST /incident HTTP/1.1\r\nHost: device\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    status = (await reader.readline()).decode().strip()
    writer.close()
    return status


async def script(
    agent: Agent, central: Central, key: Ed25519PrivateKey, nfc: Pn532Simulator, console: Console
) -> None:
    """What happens during the demo, with pauses a person can follow."""
    now = int(time.time() * 1000)
    central.publish(
        f"grid/v1/{DEV}/desired/tasks",
        signed(key, "tasks", tasks_body(now), {"dev": DEV}),
        retain=True,
    )
    await asyncio.sleep(3)
    sock = agent.cfg.device.state_dir / "api.sock"
    if sock.exists():
        console.print(f"[magenta]demo:[/] incident via the local API -> {await api_incident(sock)}")
    await asyncio.sleep(5)
    console.print("[magenta]demo:[/] zone ruyihu switches to emergency for 30 s")
    central.publish(
        "grid/v1/zone/ruyihu/desired/mode",
        signed(
            key,
            "mode",
            {"mode": "emergency", "reason": "demo drill"},
            {"zone": "ruyihu"},
            exp=int(time.time() * 1000) + 30_000,
        ),
        retain=True,
    )
    await asyncio.sleep(120)  # by now GPS has checked in at the Pier and the Bridge
    console.print("[magenta]demo:[/] the worker taps the Plaza tag (NFC)")
    nfc.present(CHECKPOINTS[2][4])
    await asyncio.sleep(2)
    nfc.remove()


async def main(seconds: float | None, workdir: str | None) -> int:
    """Run the demo until Ctrl-C (or `seconds`)."""
    console = Console()
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    broker = Broker(base / "broker")
    broker.start()
    console.print(f"[bold]Mosquitto[/] on 127.0.0.1:{broker.port}; state in {base}")
    key = Ed25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    write_demo_photo(base / "camera")
    central = Central(broker.host, broker.port, console)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            GpsSimulator(
                walk=route(), speed_mps=1.6, noise_m=2.0, outlier_prob=0.01, outage_prob=0.0, seed=7
            ) as gps,
            Pn532Simulator() as nfc,
        ):
            cfg = demo_config(base, broker.port, public, str(gps.port), str(nfc.port))
            async with Agent(cfg) as agent:
                task = asyncio.create_task(
                    script(agent, central, key, nfc, console), name="demo-script"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        central.close()
        broker.stop()
    return 0
