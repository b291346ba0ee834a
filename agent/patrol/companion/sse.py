"""The page's event stream (server-sent events, `/api/events`): notices as they come, pings
while quiet, until the server closes or the phone goes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PING_S = 15.0  # SSE comment lines keep the phone's connection (and its NAT) alive


async def event_stream(
    request: web.Request, notices: asyncio.Queue[dict[str, Any]], closing: asyncio.Event
) -> web.StreamResponse:
    """Write each notice from `notices` as an SSE event until a `bye` notice, `closing` is set
    or the phone closes the connection; returns the (finished) response."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 3000\n\n")
        while not closing.is_set():
            try:
                async with asyncio.timeout(PING_S):  # 3.11's wait_for drops cancels
                    notice = await notices.get()
            except TimeoutError:
                await resp.write(b": ping\n\n")
                continue
            if notice.get("type") == "bye":
                break
            data = json.dumps(notice, ensure_ascii=False, separators=(",", ":"))
            await resp.write(f"event: {notice['type']}\ndata: {data}\n\n".encode())
    except ConnectionError:
        log.debug("companion: event stream closed by the phone")
    return resp
