"""The companion page's HTTP server: aiohttp on the agent's own loop (docs/companion.md).

Every /api request passes, in order: the rate limit per client (429), the session cookie
(401; not for /api/pair), the CSRF token on POST (403), then the local API's body rules
(411 no Content-Length, 413 too large, 415 wrong type, 400 not matching the schema).
What it is given is typed in `protocols.py`; the event stream it serves is `sse.py`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.errors import ConfigError, StoreError
from agent.patrol.companion.access import RateLimiter, Session, Sessions, code_matches, csrf_ok
from agent.patrol.companion.delivery import Deliveries
from agent.patrol.companion.files import PhotoRefused, device_code, phone_jpeg
from agent.patrol.companion.protocols import PatrolPage, Waiting
from agent.patrol.companion.sse import event_stream
from agent.patrol.companion.upload import read_incident
from agent.patrol.companion.view import next_checkpoint, progress
from agent.patrol.config import CompanionConfig
from agent.patrol.localapi import ApiReply, SosIn, parse_body
from firmware_bridge import board

log = logging.getLogger(__name__)

COOKIE = "ge_sid"
STATIC = ("index.html", "app.js", "app.css")
_SHA = re.compile(r"^[0-9a-f]{64}$")
SESSION = web.RequestKey("session", Session)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page_files() -> dict[str, bytes]:
    """The page's three files from the package (no CDN, no fonts: everything is here)."""
    base = resources.files("agent.patrol.companion") / "static"
    return {name: (base / name).read_bytes() for name in STATIC}


def _err(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


class CompanionServer:
    """Serves the page and its API; `async with` listens, exit closes streams and the socket."""

    def __init__(
        self,
        patrol: PatrolPage,
        cfg: CompanionConfig,
        *,
        state_dir: Path,
        outbox: Waiting,
        online: Callable[[], bool] = lambda: False,
        media_path: Callable[[str], Path] | None = None,
        max_body: int = 16 * 1024,
        mono_ms: Callable[[], int] = lambda: time.monotonic_ns() // 1_000_000,
    ) -> None:
        self._patrol, self._cfg = patrol, cfg
        self._state_dir = state_dir
        self._outbox, self._online, self._media_path = outbox, online, media_path
        self._max_body = max_body
        self._now = mono_ms
        self._code: str | None = None
        self._sessions = Sessions(
            lifetime_ms=int(cfg.session_s * 1000),
            limit=cfg.max_sessions,
            new_token=lambda: secrets.token_urlsafe(32),
        )
        self._pair_limit = RateLimiter(cfg.pair_attempts_per_min)
        self._req_limit = RateLimiter(cfg.requests_per_min)
        self._files: dict[str, bytes] = {}
        self._streams: set[asyncio.Queue[dict[str, Any]]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.stats = {"requests": 0, "refused": 0, "paired": 0, "streams": 0}
        # What this page sent, so it can say "sent" once the broker has it.
        self._deliveries = Deliveries(outbox, patrol.notices.publish)

    def app(self) -> web.Application:
        """The aiohttp application (tests drive it with aiohttp's test client)."""
        photos = self._cfg.photo_max_bytes * max(1, self._cfg.max_photos)
        app = web.Application(
            middlewares=[self._guard], client_max_size=photos + self._max_body + 64 * 1024
        )
        r = app.router
        r.add_get("/", self._index)
        r.add_get("/static/{name}", self._static)
        r.add_post("/api/pair", self._pair)
        r.add_get("/api/session", self._session)
        r.add_post("/api/logout", self._logout)
        r.add_get("/api/state", self._state)
        r.add_get("/api/events", self._events)
        r.add_get("/api/photo/{sha}", self._photo)
        r.add_post("/api/checkin", self._checkin)
        r.add_post("/api/incident", self._incident)
        r.add_post("/api/sos", self._sos)
        r.add_post("/api/safety/ok", self._safety_ok)
        return app

    async def prepare(self) -> None:
        """Load the page files and the pairing code (blocking reads, off the loop)."""
        self._files = await asyncio.to_thread(page_files)
        digits = self._cfg.code_digits
        self._code = await asyncio.to_thread(device_code, self._state_dir, digits)

    async def __aenter__(self) -> CompanionServer:
        await self.prepare()
        ctx = None
        if self._cfg.tls_cert_file is not None and self._cfg.tls_key_file is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                ctx.load_cert_chain(self._cfg.tls_cert_file, self._cfg.tls_key_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError([("companion.tls_cert_file", str(exc))]) from exc
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._cfg.host, self._cfg.port, ssl_context=ctx)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError([("companion.port", f"cannot listen: {exc}")]) from exc
        server = site._server  # aiohttp keeps the bound sockets here; port 0 picks one
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else self._cfg.port
        scheme = "https" if ctx else "http"
        log.info("companion page on %s://%s:%d/", scheme, self._cfg.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        for q in list(self._streams):
            q.put_nowait({"type": "bye"})
        if self._runner is not None:
            await self._runner.cleanup()

    # ----- the gate every request passes -------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.stats["requests"] += 1
        now = self._now()
        peer = request.remote or "?"
        if request.path.startswith("/api/"):
            if not self._req_limit.allow(peer, now):
                self.stats["refused"] += 1
                wait = self._req_limit.retry_after_s(peer)
                limited = _err(
                    429, "rate_limited", f"too many requests, wait {wait} s", retry_after_s=wait
                )
                limited.headers["Retry-After"] = str(wait)
                return limited
            if request.path != "/api/pair":
                session = self._sessions.get(request.cookies.get(COOKIE), now)
                if session is None:
                    return _err(401, "not_paired", "pair this phone with the device's code")
                if request.method == "POST" and not csrf_ok(
                    session, request.headers.get("X-CSRF-Token")
                ):
                    self.stats["refused"] += 1
                    return _err(403, "csrf", "missing or wrong CSRF token")
                request[SESSION] = session
        try:
            resp = await handler(request)
        except ApiReply as reply:
            resp = web.json_response(reply.body, status=reply.status)
        except web.HTTPRequestEntityTooLarge:
            resp = _err(413, "too_large", "request body too large")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'"
        )
        if request.path.startswith("/api/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def _body_rules(self, request: web.Request, types: tuple[str, ...], limit: int) -> None:
        # The local API's rules (agent/patrol/localapi.py), in its order.
        length = request.content_length
        if length is None:
            raise ApiReply(411, "length_required", "send a Content-Length, not chunked encoding")
        if length > limit:
            raise ApiReply(413, "too_large", f"body over {limit} bytes")
        if length and request.content_type not in types:
            raise ApiReply(415, "unsupported_media_type", f"Content-Type must be {types[0]}")

    async def _json(self, request: web.Request) -> bytes:
        self._body_rules(request, ("application/json",), self._max_body)
        return await request.read()

    # ----- page -----------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html", "text/html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC or name == "index.html":
            raise web.HTTPNotFound()
        ctype = "application/javascript" if name.endswith(".js") else "text/css"
        return self._file(name, ctype)

    def _file(self, name: str, ctype: str) -> web.Response:
        resp = web.Response(body=self._files[name], content_type=ctype, charset="utf-8")
        resp.headers["Cache-Control"] = "no-cache"
        resp.enable_compression()
        return resp

    # ----- pairing and session ----------------------------------------------------------------
    async def _pair(self, request: web.Request) -> web.StreamResponse:
        now, peer = self._now(), request.remote or "?"
        # Counted per client and for all clients together: a changing address gains nothing.
        if not (self._pair_limit.allow(peer, now) and self._pair_limit.allow("*all*", now)):
            self.stats["refused"] += 1
            # The later of the client's and the shared bucket: the real wait, in seconds.
            wait = max(self._pair_limit.retry_after_s(k) for k in (peer, "*all*"))
            resp = _err(
                429, "rate_limited", f"too many pairing attempts, wait {wait} s", retry_after_s=wait
            )
            resp.headers["Retry-After"] = str(wait)
            return resp
        raw = await self._json(request)
        try:
            data = json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError):
            return _err(400, "bad_json", "body is not JSON")
        code = data.get("code") if isinstance(data, dict) else None
        if not isinstance(code, str) or len(code) > 32:
            return _err(400, "invalid", "give the pairing code as a string")
        assert self._code is not None
        if not code_matches(code, self._code):
            log.info("companion: wrong pairing code from %s", peer)
            return _err(403, "wrong_code", "that is not this device's code")
        session = self._sessions.open(now)
        self.stats["paired"] += 1
        log.info("companion: a phone paired from %s", peer)
        resp = web.json_response({"csrf": session.csrf, "expires_s": self._cfg.session_s})
        resp.set_cookie(
            COOKIE,
            session.token,
            max_age=int(self._cfg.session_s),
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            path="/",
        )
        return resp

    async def _session(self, request: web.Request) -> web.StreamResponse:
        s: Session = request[SESSION]
        return web.json_response({"csrf": s.csrf, "expires_s": (s.expires_ms - self._now()) / 1e3})

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self._sessions.close(request[SESSION].token)
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    # ----- views ------------------------------------------------------------------------------
    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self.state())

    async def state(self) -> dict[str, Any]:
        """Tasks, the next checkpoint, device health and what waits to be sent."""
        tasks = list(self._patrol.tasks_view().get("tasks", []))
        fix, acc = self._patrol.current_fix()
        here = None if fix is None or fix.lat is None or fix.lon is None else (fix.lat, fix.lon)
        patrol = dict(self._patrol.status().get("patrol", {}))
        try:
            oldest = await self._outbox.oldest_ms()
        except StoreError:
            oldest = None
        gps = patrol.get("gps") or {}
        return {
            "tasks": progress(tasks),
            "next": next_checkpoint(tasks, here),
            "health": {
                "fix": gps.get("fix", "none"),
                "sats": gps.get("sats"),
                "acc_m": None if acc is None else round(acc, 1),
                "link": self._online(),
                "battery_pct": board.batt_pct(),
                "camera": (patrol.get("camera") or {}).get("error") is None,
            },
            "waiting": {
                "messages": self._outbox.depth,
                "bytes": self._outbox.bytes,
                "oldest_ms": oldest,
                "patrol_unsent": patrol.get("unsent", 0),
            },
            "sent": self._deliveries.sent(),
            "prompt": self._patrol.safety.view(),
        }

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if len(self._streams) >= 2 * self._cfg.max_sessions:
            return _err(503, "busy", "too many open event streams")
        with self._patrol.notices.listen() as q:
            self._streams.add(q)  # so that closing the server ends it with a `bye`
            self.stats["streams"] += 1
            try:
                return await event_stream(request, q, self._closing)
            finally:
                self._streams.discard(q)

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        if self._media_path is None or not _SHA.match(sha):
            raise web.HTTPNotFound()
        path = self._media_path(sha)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return _err(404, "gone", "the photo was sent and removed from the device")
        return web.Response(body=data, content_type="image/jpeg")

    # ----- actions ----------------------------------------------------------------------------
    async def _checkin(self, request: web.Request) -> web.StreamResponse:
        await self._json(request)  # no fields; the body rules still hold
        try:
            result = await self._patrol.manual_checkin()
        except StoreError as exc:
            return _err(503, "store_failed", str(exc))
        return web.json_response(result, status=201 if result.get("checked_in") else 409)

    async def _sos(self, request: web.Request) -> web.StreamResponse:
        req = parse_body(SosIn, await self._json(request), required=False)
        try:
            stored = await self._patrol.sos(note=req.note)
        except StoreError as exc:
            return _err(503, "store_failed", str(exc))
        sent = await self._deliveries.follow(stored.seq)
        out = {"kind": "alarm", "id": stored.id, "seq": stored.seq, "sent": sent}
        return web.json_response(out, status=201)

    async def _safety_ok(self, request: web.Request) -> web.StreamResponse:
        await self._json(request)  # no fields; the body rules still hold
        answered = await self._patrol.safety.answer("page")
        return web.json_response({"answered": answered})

    async def _incident(self, request: web.Request) -> web.StreamResponse:
        cfg = self._cfg
        limit = cfg.photo_max_bytes * max(1, cfg.max_photos) + self._max_body
        self._body_rules(request, ("multipart/form-data",), limit)
        req, images = await read_incident(
            await request.multipart(), max_photos=cfg.max_photos, photo_bytes=cfg.photo_max_bytes
        )
        try:
            jpegs = [await asyncio.to_thread(phone_jpeg, data) for data in images]
        except PhotoRefused as exc:
            return _err(exc.status, "bad_photo", str(exc))
        try:
            stored = await self._patrol.incident(
                category=req.category, level=req.level, note=req.note, photo=False, images=jpegs
            )
        except StoreError as exc:
            return _err(503, "store_failed", str(exc))
        out = {
            "kind": "incident",
            "id": stored.id,
            "seq": stored.seq,
            "photos": len(jpegs),
            "sent": await self._deliveries.follow(stored.seq),
        }
        return web.json_response(out, status=201)
