"""A camera's event-stream endpoint on 127.0.0.1 for tests: digest or basic auth, scripted bodies.

Each authenticated connection plays the next script: a list of steps, each bytes (written),
a float (a pause in seconds) or HANG (stay open, silent, until the test ends). After the last
step the connection closes. No tests here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

from tests.kits.loopback import LoopbackServer

HANG = object()
REALM = "IP Camera(C1234)"
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class CameraStreamServer(LoopbackServer):
    """Async context manager: serves GET on any path with the scripted multipart bodies."""

    def __init__(
        self,
        content_type: str,
        scripts: Sequence[Sequence[Any]],
        *,
        auth: str = "digest",
        username: str = "admin",
        password: str = "",
    ) -> None:
        super().__init__()
        self.content_type = content_type
        self._scripts = list(scripts)
        self._auth = auth
        self._user = username
        self._password = password
        self._nonce = secrets.token_hex(16)
        self.requests: list[str] = []
        self.refused = 0
        self.served = 0
        self.played = asyncio.Event()

    def url(self, path: str = "/ISAPI/Event/notification/alertStream") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _authorised(self, method: str, target: str, header: str) -> bool:
        scheme, _, cred = header.partition(" ")
        if self._auth == "basic":
            expect = base64.b64encode(f"{self._user}:{self._password}".encode()).decode()
            return scheme.lower() == "basic" and cred.strip() == expect
        if scheme.lower() != "digest":
            return False
        p = {
            m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM.finditer(cred)
        }
        if p.get("username") != self._user or p.get("nonce") != self._nonce:
            return False
        ha1 = _md5(f"{self._user}:{REALM}:{self._password}")
        ha2 = _md5(f"{method}:{p.get('uri')}")
        want = _md5(f"{ha1}:{self._nonce}:{p.get('nc')}:{p.get('cnonce')}:{p.get('qop')}:{ha2}")
        return p.get("uri") == target and p.get("response") == want

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:  # keep-alive: digest retries on the same connection
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                line, *rest = head.split("\r\n")
                method, target, _ = line.split(" ", 2)
                self.requests.append(target)
                headers = {}
                for h in rest:
                    if ":" in h:
                        k, _, v = h.partition(":")
                        headers[k.strip().lower()] = v.strip()
                if self._authorised(method, target, headers.get("authorization", "")):
                    break
                self.refused += 1
                challenge = (
                    f'Digest realm="{REALM}", qop="auth", nonce="{self._nonce}", algorithm=MD5'
                    if self._auth == "digest"
                    else f'Basic realm="{REALM}"'
                )
                writer.write(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                    + f"WWW-Authenticate: {challenge}\r\n\r\n".encode()
                )
                await writer.drain()
            script = self._scripts.pop(0) if self._scripts else [HANG]
            self.served += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                + f"Content-Type: {self.content_type}\r\n\r\n".encode()
            )
            await writer.drain()
            for step in script:
                if step is HANG:
                    if not self._scripts:
                        self.played.set()
                    await asyncio.Event().wait()
                elif isinstance(step, (int, float)):
                    await asyncio.sleep(step)
                else:
                    writer.write(step)
                    await writer.drain()
            if not self._scripts:
                self.played.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()


def trickle(data: bytes, size: int, pause: float) -> list[Any]:
    """A slow sender: `data` in slices of `size` bytes with a pause after each."""
    out: list[Any] = []
    for i in range(0, len(data), size):
        out += [data[i : i + size], pause]
    return out
