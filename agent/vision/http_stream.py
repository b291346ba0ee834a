"""The one place httpx is used: a long-lived GET with digest or basic auth, read as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from agent.errors import DeviceError


@dataclass(frozen=True, slots=True)
class StreamAuth:
    """Credentials for the camera; the password never appears in a repr or a log line."""

    kind: Literal["digest", "basic"]
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class StreamTimeouts:
    """Seconds to connect, and longest silence between two reads before the stream is dead."""

    connect_s: float
    idle_s: float


class ByteStream(Protocol):
    """An open response: its Content-Type and its body in slices as they arrive."""

    content_type: str

    def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; DeviceError when the connection fails or goes silent."""
        ...


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.content_type = response.headers.get("content-type", "")

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            raise DeviceError(_reason(exc)) from exc


def _reason(exc: httpx.HTTPError) -> str:
    # Names the failure without echoing request details; no credentials are in the URL.
    text = str(exc) or "no detail"
    return f"{type(exc).__name__}: {text[:200]}"


@asynccontextmanager
async def open_stream(
    url: str, auth: StreamAuth | None, timeouts: StreamTimeouts, *, verify: bool = True
) -> AsyncIterator[ByteStream]:
    """GET `url` and hold the response open; DeviceError for any refusal or network failure."""
    timeout = httpx.Timeout(
        connect=timeouts.connect_s,
        read=timeouts.idle_s,
        write=timeouts.connect_s,
        pool=timeouts.connect_s,
    )
    how: httpx.Auth | None = None
    if auth is not None:
        how = (
            httpx.DigestAuth(auth.username, auth.password)
            if auth.kind == "digest"
            else httpx.BasicAuth(auth.username, auth.password)
        )
    # trust_env off: a proxy from the environment must not see camera traffic or credentials.
    async with httpx.AsyncClient(timeout=timeout, verify=verify, trust_env=False) as client:
        try:
            request = client.build_request("GET", url)
            response = await client.send(request, auth=how, stream=True)
        except httpx.HTTPError as exc:
            raise DeviceError(_reason(exc)) from exc
        try:
            if response.status_code != 200:
                raise DeviceError(f"HTTP {response.status_code} {response.reason_phrase}")
            yield _Response(response)
        finally:
            await response.aclose()
