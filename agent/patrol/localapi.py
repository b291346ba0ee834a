"""A tiny HTTP/1.1 JSON API for a handheld UI, on a unix socket or 127.0.0.1 only (docs/patrol.md).

One request per connection (`Connection: close`). Requests are checked in this order:
path (404), method (405), Content-Length present and within the limit (411, 413), content
type application/json (415), JSON object matching the endpoint's schema (400). A refusal by
the patrol (no checkpoint in reach) is 409; a storage failure 503, except for a manual
check-in, which the patrol queues until the outbox takes it: 201 with `queued: true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agent.errors import ConfigError, StoreError
from sync.messages import Stored

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 8 * 1024
MAX_CONNECTIONS = 8

_Note = Annotated[str, StringConstraints(max_length=1000)]


class _Input(BaseModel):
    # strict: "2" is not a level and 1 is not a bool; a UI bug must show up as a 400.
    # defer_build: built by the first request, not by an idle device's imports (issue 22).
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


M = TypeVar("M", bound=_Input)


class IncidentIn(_Input):
    """POST /incident."""

    category: Literal[
        "vending", "parking", "sanitation", "facility", "safety", "crowd", "water", "fire", "other"
    ]
    level: Annotated[int, Field(ge=1, le=4)]
    note: _Note = ""
    photo: bool = True


class SosIn(_Input):
    """POST /sos."""

    note: _Note = ""


class ManualIn(_Input):
    """POST /checkin/manual takes no fields (an empty body or `{}`)."""


class SafetyAnswer(Protocol):
    """The device's safety checks (agent/patrol/safety.py): the worker's answer."""

    async def answer(self, by: str) -> bool: ...


class PatrolApi(Protocol):
    """What the API drives; the patrol driver implements it."""

    @property
    def safety(self) -> SafetyAnswer: ...

    async def incident(self, *, category: str, level: int, note: str, photo: bool) -> Stored: ...
    async def sos(self, *, note: str) -> Stored: ...
    async def manual_checkin(self) -> dict[str, Any]: ...
    def status(self) -> Mapping[str, Any]: ...
    def tasks_view(self) -> Mapping[str, Any]: ...


class _Reply(Exception):
    # Control flow inside one request: carries the response, never leaves this module.
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}


def check_bind_host(host: str) -> str:
    """The host if it is a loopback address; ConfigError otherwise (the API has no auth)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError([("patrol.api", f"refusing to listen on {host!r}: loopback only")])
    return host


class LocalApi:
    """Serves PatrolApi over HTTP/1.1; `async with` listens, exit stops and removes the socket."""

    def __init__(
        self,
        api: PatrolApi,
        *,
        socket_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        max_body: int = 16 * 1024,
        timeout_s: float = 30.0,
    ) -> None:
        if (socket_path is None) == (port is None):
            raise ConfigError([("patrol.api", "give exactly one of a socket path or a port")])
        self._api = api
        self._path = socket_path
        self._host = check_bind_host(host)
        self._port = port
        self._max_body = max_body
        self._timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self.requests = 0
        self.port: int | None = None  # the TCP port actually bound (port=0 picks one)
        self._routes: dict[str, dict[str, Callable[[bytes | None], Awaitable[tuple[int, Any]]]]]
        self._routes = {
            "/incident": {"POST": self._incident},
            "/sos": {"POST": self._sos},
            "/checkin/manual": {"POST": self._manual},
            "/safety/ok": {"POST": self._safety_ok},
            "/status": {"GET": self._status},
            "/tasks": {"GET": self._tasks},
        }

    async def __aenter__(self) -> LocalApi:
        if self._path is not None:
            sock = await _bound(self._path)
            try:
                self._server = await asyncio.start_unix_server(
                    self._serve, sock=sock, limit=MAX_HEADER_BYTES
                )
            except BaseException:
                sock.close()  # the server never owned it (a failure, or a stop while starting)
                raise
            log.info("local API on unix socket %s", self._path)
        else:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=MAX_HEADER_BYTES
            )
            self.port = int(self._server.sockets[0].getsockname()[1])
            log.info("local API on http://%s:%d", self._host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            if len(self._conns) > MAX_CONNECTIONS:
                status, body = 503, {"error": "busy", "message": "too many connections"}
            else:
                status, body = await self._respond(reader)
            await _write(writer, status, body)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.debug("local API client went away: %s", exc)
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        self.requests += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                method, path, headers = await _read_head(reader)
                handlers = self._routes.get(path)
                if handlers is None:
                    raise _Reply(
                        404, "not_found", f"no endpoint {path}", endpoints=sorted(self._routes)
                    )
                handler = handlers.get(method)
                if handler is None:
                    allowed = ", ".join(sorted(handlers))
                    raise _Reply(
                        405, "method_not_allowed", f"{path} takes {allowed}", allow=allowed
                    )
                body = await self._read_body(reader, method, headers)
            return await handler(body)
        except _Reply as reply:
            return reply.status, reply.body
        except TimeoutError:
            return 408, {"error": "timeout", "message": "request not received in time"}

    async def _read_body(
        self, reader: asyncio.StreamReader, method: str, headers: Mapping[str, str]
    ) -> bytes | None:
        if method == "GET":
            return None
        if "transfer-encoding" in headers:
            raise _Reply(411, "length_required", "send a Content-Length, not chunked encoding")
        raw = headers.get("content-length", "0")
        if not raw.isdigit():
            raise _Reply(400, "bad_request", "Content-Length must be a number")
        length = int(raw)
        if length > self._max_body:
            raise _Reply(413, "too_large", f"body over {self._max_body} bytes")
        if length == 0:
            return b""
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise _Reply(415, "unsupported_media_type", "Content-Type must be application/json")
        return await reader.readexactly(length)

    # ----- endpoints -------------------------------------------------------------------------
    async def _incident(self, body: bytes | None) -> tuple[int, Any]:
        req = _parse(IncidentIn, body, required=True)
        stored = await _store(
            self._api.incident(
                category=req.category, level=req.level, note=req.note, photo=req.photo
            )
        )
        return 201, {"kind": "incident", "id": stored.id, "seq": stored.seq}

    async def _sos(self, body: bytes | None) -> tuple[int, Any]:
        req = _parse(SosIn, body, required=False)
        stored = await _store(self._api.sos(note=req.note))
        return 201, {"kind": "alarm", "id": stored.id, "seq": stored.seq}

    async def _safety_ok(self, body: bytes | None) -> tuple[int, Any]:
        _parse(ManualIn, body, required=False)  # no fields, like a manual check-in
        return 200, {"answered": await self._api.safety.answer("api")}

    async def _manual(self, body: bytes | None) -> tuple[int, Any]:
        _parse(ManualIn, body, required=False)
        try:
            result = await self._api.manual_checkin()
        except StoreError as exc:
            raise _Reply(503, "store_failed", str(exc)) from None
        if not result.get("checked_in"):
            raise _Reply(409, "no_checkin", "no checkpoint to check in at", **result)
        return 201, result

    async def _status(self, body: bytes | None) -> tuple[int, Any]:
        return 200, dict(self._api.status())

    async def _tasks(self, body: bytes | None) -> tuple[int, Any]:
        return 200, dict(self._api.tasks_view())


async def _store(op: Awaitable[Stored]) -> Stored:
    try:
        return await op
    except StoreError as exc:
        raise _Reply(503, "store_failed", str(exc)) from None


def _parse(model: type[M], body: bytes | None, *, required: bool) -> M:
    if not body:
        if required:
            raise _Reply(400, "bad_request", "a JSON body is required")
        return model()
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # too deep: RecursionError
        raise _Reply(400, "bad_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Reply(400, "bad_json", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {
                "field": ".".join(str(p) for p in e["loc"]) or "body",
                "problem": "unknown field" if e["type"] == "extra_forbidden" else e["msg"],
            }
            for e in exc.errors()
        ]
        raise _Reply(
            400, "invalid", "the body does not match the schema", problems=problems
        ) from None


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise _Reply(431, "header_too_large", f"headers over {MAX_HEADER_BYTES} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Reply(400, "bad_request", "expected 'METHOD /path HTTP/1.1'")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise _Reply(400, "bad_request", f"malformed header line {line[:40]!r}")
        headers[name.strip().lower()] = value.strip()
    return parts[0].upper(), parts[1].split("?", 1)[0], headers


async def _write(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    reason = HTTPStatus(status).phrase
    head = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    if status == 405 and isinstance(body, dict) and "allow" in body:
        head.append(f"Allow: {body['allow']}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()


async def _bound(path: Path) -> socket.socket:
    """`_unix_socket` off the loop; a stop that comes meanwhile still closes the socket."""
    job = asyncio.ensure_future(asyncio.to_thread(_unix_socket, path))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        job.add_done_callback(_close_result)
        raise


def _close_result(job: asyncio.Future[socket.socket]) -> None:
    if not job.cancelled() and job.exception() is None:
        job.result().close()


def _unix_socket(path: Path) -> socket.socket:
    """A bound, not yet listening unix socket with mode 0660 (so no one connects before chmod)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError([("patrol.api_socket", f"{path} exists and is not a socket")])
        if _listening(path):
            raise ConfigError([("patrol.api_socket", f"another process serves {path}")])
        path.unlink()  # left over from a crash: nothing listens on it any more
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o660)
    except OSError as exc:
        sock.close()
        raise ConfigError([("patrol.api_socket", f"cannot bind {path}: {exc}")]) from exc
    return sock


def _listening(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


# The companion page (agent/patrol/companion) applies the same body rules to its requests.
ApiReply = _Reply
parse_body = _parse
