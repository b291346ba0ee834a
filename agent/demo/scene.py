"""The demo's patrol device and camera gateway: configs, tasks, the walk, signed documents."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.config.model import Config, parse
from sync.verify import sign

DEV = "pd-demo"
GW = "gw-demo"
ZONES = ["ruyihu", "ruyihu.cbd"]
# Status every 3 s in every mode: the live view shows health as it changes.
PROFILES = {m: {"status_interval_s": 3} for m in ("normal", "holiday", "major_event", "emergency")}
# Three checkpoints along Ruyi Lake's east shore (WGS-84), ~60 m apart.
CHECKPOINTS = [
    ("cp-pier", "Pier", 34.77905, 113.73120, "04A1B2C3"),
    ("cp-bridge", "Bridge", 34.77960, 113.73130, "04D4E5F6"),
    ("cp-plaza", "Plaza", 34.78012, 113.73141, "0416C6C2D73881"),
]


def _base(dev: str, role: str, state_dir: Path, port: int, public_key: str) -> dict[str, Any]:
    return {
        "device": {"id": dev, "role": role, "zones": ZONES, "state_dir": str(state_dir)},
        "broker": {"host": "127.0.0.1", "port": port},
        "trust": {"ops_keys": [{"kid": "ops-demo", "public_key": public_key}]},
        "modes": {"profiles": PROFILES},
    }


def gateway_config(workdir: Path, port: int, public_key: str, camera: dict[str, Any]) -> Config:
    """The camera gateway on the local broker, fed by the generated clip."""
    data = _base(GW, "camera_gateway", workdir / "gateway", port, public_key)
    return parse({**data, "cameras": [camera]})


def patrol_config(workdir: Path, port: int, public_key: str, gps: str, nfc: str) -> Config:
    """The patrol device on the local broker with simulated GPS and NFC and a file camera."""
    data = _base(DEV, "patrol", workdir / "patrol", port, public_key)
    data["device"]["staff_id"] = "s-1023"
    return parse(
        {
            **data,
            "gps": {"port": gps, "baud": 9600},
            "nfc": {"port": nfc, "baud": 115200},
            "camera": {"source": f"file:{workdir / 'camera'}", "width": None, "height": None},
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
                        "dwell_s": 5,
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
    points: list[tuple[float, float]] = [(34.77895, 113.73118)]
    for _, _, lat, lon, _ in CHECKPOINTS[:2]:
        d = 0.00002  # ~2 m: small loops keep the walker inside the radius for a while
        for _ in range(4):
            points += [(lat + d, lon), (lat, lon + d), (lat - d, lon), (lat, lon - d)]
    points.append((CHECKPOINTS[2][2] - 0.0003, CHECKPOINTS[2][3]))
    return points


def write_demo_photo(folder: Path) -> None:
    """A picture for the patrol device's file camera, drawn at start."""
    folder.mkdir(parents=True, exist_ok=True)
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
