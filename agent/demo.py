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


def demo_config(workdir: Path, port: int, public_key: str) -> Config:
    """The embedded defaults: a patrol device on the local broker."""
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
            "trust": {"ops_keys": [{"kid": "ops-demo", "public_key": public_key}]},
            "modes": {"profiles": {"normal": {"status_interval_s": 10}}},
        }
    )


def tasks_document(key: Ed25519PrivateKey, now_ms: int) -> bytes:
    """A signed tasks document with one task over the demo checkpoints."""
    body = {
        "tasks": [
            {
                "id": "t-demo",
                "name": "Ruyi Lake east shore",
                "staff_id": "s-1023",
                "start_ms": now_ms - 60_000,
                "end_ms": now_ms + 3_600_000,
                "order": "sequence",
                "checkpoints": [
                    {"id": i, "name": n, "lat": la, "lon": lo, "radius_m": 25, "dwell_s": 10,
                     "tags": [t], "photo": False}
                    for i, n, la, lo, t in CHECKPOINTS
                ],
            }
        ]
    }
    payload = {"typ": "tasks", "id": str(uuid.uuid4()), "target": {"dev": DEV}, "ver": now_ms,
               "iat": now_ms, "exp": None, "body": body}
    return sign(payload, "ops-demo", key)


async def main(seconds: float | None, workdir: str | None) -> int:
    """Run the demo until Ctrl-C (or `seconds`)."""
    console = Console()
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    broker = Broker(base / "broker")
    broker.start()
    console.print(f"[bold]Mosquitto[/] on 127.0.0.1:{broker.port}; state in {base}")
    key = Ed25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    cfg = demo_config(base, broker.port, public)
    central = Central(broker.host, broker.port, console)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Agent(cfg) as agent:
            now = int(time.time() * 1000)
            central.publish(f"grid/v1/{DEV}/desired/tasks", tasks_document(key, now), retain=True)
            await agent.outbox.append(
                "incident",
                {"category": "facility", "level": 3, "note": "street lamp out", "lat": None,
                 "lon": None, "acc_m": None, "staff_id": "s-1023", "photos": []},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
    finally:
        central.close()
        broker.stop()
    return 0
