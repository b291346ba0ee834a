"""A camera's push to the gateway's alarm endpoint, byte for byte: the request and its answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

TOKEN = "s3cret-token-0123456789"


def http(
    method: str = "POST",
    path: str = "/alarm/cam-gate-1",
    body: bytes = b"",
    headers: dict[str, str | None] | None = None,
    auth: bool = True,
) -> bytes:
    """A raw HTTP/1.1 request with bearer `TOKEN`; a header given as None is left out."""
    hdrs: dict[str, str | None] = {
        "Host": "gw",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
    }
    if auth:
        hdrs["Authorization"] = f"Bearer {TOKEN}"
    hdrs.update(headers or {})
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    return f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body


async def send(port: int, raw: bytes) -> tuple[int, Any, bytes]:
    """Send `raw` to 127.0.0.1:`port`; (status, JSON payload or None, the raw answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    payload = json.loads(data.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in data else None
    return status, payload, data


def js(obj: Any) -> bytes:
    """`obj` as a JSON body."""
    return json.dumps(obj).encode()
