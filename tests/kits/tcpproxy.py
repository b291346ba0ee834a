"""A loopback TCP proxy a test controls: pass, drop every connection, stall silently, throttle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

log = logging.getLogger(__name__)

CHUNK = 16 * 1024


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream`; faults are switched at any time.

    `stall()` makes every connection half-open: nothing is forwarded either way and nothing is
    closed, as when a NAT box forgets the flow. `accepted` keeps the accept times, so a test can
    see when the client gave up on a stalled connection and dialled again.
    """

    def __init__(self, upstream: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream = upstream
        self.port = 0
        self.stalled = False
        self.rate: float | None = None  # bytes per second per direction; None: unlimited
        self.accepted: list[float] = []
        self.client_closed: list[float] = []
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._resume = asyncio.Event()
        self._resume.set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop()
        if self._server is not None:
            await self._server.wait_closed()

    async def drop(self) -> None:
        """Close every open connection now (both sides see a reset/EOF)."""
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)

    def stall(self) -> None:
        """Stop forwarding, keep every socket open (half-open from the client's view)."""
        self.stalled = True
        self._resume.clear()

    async def heal(self) -> None:
        """Forward again; stalled connections are dropped (their peers gave up on them)."""
        if self.stalled:
            self.stalled = False
            await self.drop()
            self._resume.set()
        self.rate = None

    def throttle(self, bytes_per_s: float | None) -> None:
        """Limit each direction of each connection to `bytes_per_s` (None: unlimited)."""
        self.rate = bytes_per_s

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        up_w: asyncio.StreamWriter | None = None
        try:
            if self.stalled:
                await self._resume.wait()  # a dial during a stall hangs like the others
            up_r, up_w = await asyncio.open_connection(self.host, self.upstream)
            a = asyncio.create_task(self._pipe(reader, up_w, client=True), name="proxy-up")
            b = asyncio.create_task(self._pipe(up_r, writer, client=False), name="proxy-down")
            try:
                await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
                if self.stalled:
                    # The upstream broker may close on keep-alive: the client must not hear it.
                    await self._wait_client_gone(a)
            finally:
                a.cancel()
                b.cancel()
                await asyncio.gather(a, b, return_exceptions=True)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            for w in (writer, up_w):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _wait_client_gone(self, up: asyncio.Task[None]) -> None:
        if not up.done():
            await asyncio.gather(up, return_exceptions=True)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, client: bool
    ) -> None:
        while True:
            data = await src.read(CHUNK if self.rate is None else max(1, int(self.rate / 10)))
            if not data:
                if client:
                    self.client_closed.append(time.monotonic())
                return
            if self.stalled:
                # Swallow silently; a client EOF still ends this pipe (the client gave up).
                continue
            if not self._resume.is_set():
                await self._resume.wait()
            dst.write(data)
            await dst.drain()
            if self.rate is not None:
                await asyncio.sleep(len(data) / self.rate)
