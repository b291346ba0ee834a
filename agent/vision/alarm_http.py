"""The alarm endpoint IP cameras push to: a minimal, strict HTTP/1.1 server on asyncio streams.

`POST /alarm/<camera_id>` with `Authorization: Bearer <token>` (or Basic with the token as the
password), `Content-Type` application/json or application/xml (text/xml) with `Content-Length` at
most max_body_bytes, or multipart/form-data (multipart/mixed) carrying the notification and
pictures within the `multipart` limits. One request per connection; every refusal is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from agent.config.tls import server_context
from agent.errors import CodecError, StoreError
from agent.logs import RefusalLog
from agent.vision.alarm_multipart import MULTIPART_TYPES, read_multipart_alarm
from agent.vision.alarm_parse import CameraAlarm, parse_alarm
from agent.vision.config import AlarmHttpConfig
from agent.vision.multipart import Limits, PartLimitError

log = logging.getLogger(__name__)

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_REQUEST_LINE = re.compile(r"^([A-Z]{1,16}) (/[\x21-\x7e]*) HTTP/(\d)\.(\d)$")
_TOKEN_CHARS = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PATH = re.compile(r"^/alarm/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")
_MAX_HEADERS = 64

AlarmHandler = Callable[[CameraAlarm], Awaitable[list[str]]]


class HttpError(Exception):
    """A request refused with an HTTP status and a reason the client may read."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request line and headers (names lower case, each at most once)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


def parse_head(raw: bytes) -> RequestHead:
    """Parse the bytes up to and including the blank line; HttpError(400/505) when not strict."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request head must be ASCII") from None
    lines = text.split("\r\n")
    if len(lines) < 3 or lines[-2:] != ["", ""]:
        raise HttpError(400, "request head must end with CRLF CRLF")
    m = _REQUEST_LINE.match(lines[0])
    if m is None:
        raise HttpError(400, "malformed request line")
    method, target, major, minor = m.groups()
    if (major, minor) not in (("1", "1"), ("1", "0")):
        raise HttpError(505, "only HTTP/1.1 and 1.0")
    headers: dict[str, str] = {}
    for line in lines[1:-2]:
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN_CHARS.match(name):
            raise HttpError(400, "malformed header line")
        key = name.lower()
        if key in headers:
            raise HttpError(400, f"duplicate header {key}")
        headers[key] = value.strip(" \t")
        if len(headers) > _MAX_HEADERS:
            raise HttpError(431, "too many headers")
    path, _, query = target.partition("?")
    return RequestHead(method, path, query, headers)


def _presented_token(head: RequestHead, allow_query: bool) -> str | None:
    auth = head.headers.get("authorization", "")
    scheme, _, cred = auth.partition(" ")
    if scheme.lower() == "bearer" and cred:
        return cred.strip()
    if scheme.lower() == "basic" and cred:
        try:
            user_pass = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user_pass.partition(":")[2]  # many cameras only offer user:password
    if allow_query:
        values = parse_qs(head.query).get("token")
        if values:
            return values[0]
    return None


class AlarmHttpServer:
    """Async context manager serving the alarm endpoint; owns its connection tasks."""

    def __init__(
        self,
        cfg: AlarmHttpConfig,
        token: str,
        *,
        known_camera: Callable[[str], bool],
        on_alarm: AlarmHandler,
    ) -> None:
        self._cfg = cfg
        self._token = token.encode("utf-8")
        self._known = known_camera
        self._on_alarm = on_alarm
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.stats: Counter[str] = Counter()
        self._refusals = RefusalLog(log, "alarm_http")  # a scanner must not flood the log

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> AlarmHttpServer:
        cfg = self._cfg
        tls = (
            server_context(cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
        )
        self._server = await asyncio.start_server(
            self._serve, cfg.host, cfg.port, limit=cfg.max_header_bytes, ssl=tls
        )
        log.info(
            "alarm endpoint listening on %s:%d%s", cfg.host, self.port, " (TLS)" if tls else ""
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._refusals.flush()
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            task.set_name("vision:alarm_http:conn")
            self._conns.add(task)
        peer = writer.get_extra_info("peername")
        try:
            if len(self._conns) > self._cfg.max_connections:
                raise HttpError(503, "too many connections")
            status, body = await self._request(reader, writer)
            self.stats["accepted"] += 1
            await self._respond(writer, status, body)
        except HttpError as err:
            self.stats[str(err.status)] += 1
            self._refusals.refused(err.status, peer, err.reason)
            await self._respond(writer, err.status, {"ok": False, "error": err.reason}, err.headers)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.stats["aborted"] += 1
            log.info("alarm_http client %s went away: %s", peer, exc)
        finally:
            if task is not None:
                self._conns.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError as exc:
                log.debug("alarm_http close: %s", exc)

    async def _request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, dict[str, Any]]:
        """One request: head, who and what it names, the body, the stored events -> reply."""
        cfg = self._cfg
        try:
            async with asyncio.timeout(cfg.read_timeout_s):
                raw = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise HttpError(408, "request head not received in time") from None
        except asyncio.LimitOverrunError:
            raise HttpError(431, "request head too large") from None
        head = parse_head(raw)
        camera_id = self._addressed(head)
        content_type = head.headers.get("content-type", "")
        media_type, length = self._body_shape(head, content_type)
        if head.headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        multipart = media_type in MULTIPART_TYPES
        alarm = await self._read_alarm(reader, camera_id, content_type, media_type, length)
        try:
            events = await self._on_alarm(alarm)
        except StoreError as exc:
            raise HttpError(503, f"cannot store the event now: {exc}") from None
        reply: dict[str, Any] = {"ok": True, "rule": alarm.rule, "events": events}
        if multipart:
            reply["picture"] = alarm.picture is not None
            self.stats["pictures" if alarm.picture is not None else "no_picture"] += 1
        return 200, reply

    def _addressed(self, head: RequestHead) -> str:
        """The camera a well-formed, authorised POST names; HttpError otherwise."""
        match = _PATH.match(head.path)
        if match is None:
            raise HttpError(404, "no such endpoint; POST /alarm/<camera_id>")
        if head.method != "POST":
            raise HttpError(405, "only POST", {"Allow": "POST"})
        presented = _presented_token(head, self._cfg.allow_query_token)
        if presented is None or not hmac.compare_digest(presented.encode("utf-8"), self._token):
            raise HttpError(
                401, "missing or wrong token", {"WWW-Authenticate": 'Bearer realm="alarm"'}
            )
        camera_id = match.group(1)
        if not self._known(camera_id):
            raise HttpError(404, f"unknown camera {camera_id}")
        return camera_id

    def _body_shape(self, head: RequestHead, content_type: str) -> tuple[str, int]:
        """(media type, length) of a body this endpoint takes; HttpError otherwise."""
        if "transfer-encoding" in head.headers:
            raise HttpError(501, "transfer-encoding is not supported; send Content-Length")
        length_text = head.headers.get("content-length")
        if length_text is None:
            raise HttpError(411, "Content-Length required")
        if not length_text.isdigit() or len(length_text) > 12:
            raise HttpError(400, "bad Content-Length")
        length = int(length_text)
        media_type = content_type.partition(";")[0].strip().lower()
        multipart = media_type in MULTIPART_TYPES
        limit = self._cfg.multipart.max_body_bytes if multipart else self._cfg.max_body_bytes
        if length > limit:
            raise HttpError(413, f"body larger than {limit} bytes")
        if not multipart and media_type not in ("application/json", "application/xml", "text/xml"):
            raise HttpError(
                415, "Content-Type must be application/json, application/xml or multipart/form-data"
            )
        return media_type, length

    async def _read_alarm(
        self,
        reader: asyncio.StreamReader,
        camera_id: str,
        content_type: str,
        media_type: str,
        length: int,
    ) -> CameraAlarm:
        """The body read within its time limits and parsed; HttpError when it cannot be."""
        try:
            if media_type in MULTIPART_TYPES:
                return await self._read_multipart(reader, camera_id, content_type, length)
            async with asyncio.timeout(self._cfg.read_timeout_s):
                body = await reader.readexactly(length)
            return parse_alarm(camera_id, media_type, body)
        except TimeoutError:
            raise HttpError(408, "body not received in time") from None
        except PartLimitError as exc:
            raise HttpError(413, str(exc)) from None
        except CodecError as exc:
            raise HttpError(400, str(exc)) from None

    async def _read_multipart(
        self, reader: asyncio.StreamReader, camera_id: str, content_type: str, length: int
    ) -> CameraAlarm:
        mp = self._cfg.multipart
        return await read_multipart_alarm(
            reader,
            camera_id,
            content_type,
            length,
            Limits(mp.max_parts, mp.max_part_bytes, mp.max_picture_bytes),
            read_timeout_s=self._cfg.read_timeout_s,
            body_timeout_s=mp.body_timeout_s,
        )

    async def _respond(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload)
            await writer.drain()
        except ConnectionError as exc:
            log.info("alarm_http response not delivered: %s", exc)
