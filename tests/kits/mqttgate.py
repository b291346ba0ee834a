"""A loopback proxy that holds the client's first SUBSCRIBE (and all after it) until released.

It reads the client-to-broker stream as MQTT packets (fixed header: type nibble, remaining
length as a varint), so a test can put the broker's processing of SUBSCRIBE after any other
event, e.g. a document published from elsewhere. The broker-to-client stream passes untouched.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.kits.loopback import LoopbackServer

SUBSCRIBE = 8


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One whole MQTT control packet; raises IncompleteReadError at EOF."""
    first = await reader.readexactly(1)
    header, length, shift = bytearray(first), 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        header.append(byte)
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return bytes(header) + await reader.readexactly(length)


class SubscribeGate(LoopbackServer):
    """Forwards 127.0.0.1:`port` to the broker; `held` is set once a SUBSCRIBE waits, `release()`
    lets it (and everything after it) through. One client connection at a time."""

    def __init__(self, upstream: int) -> None:
        super().__init__()
        self.upstream = upstream
        self.held = asyncio.Event()
        self._open = asyncio.Event()

    def release(self) -> None:
        """Let the held SUBSCRIBE and everything behind it go to the broker."""
        self._open.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        up_w: asyncio.StreamWriter | None = None
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream)
            up = asyncio.create_task(self._client_to_broker(reader, up_w), name="gate-up")
            down = asyncio.create_task(self._pipe(up_r, writer), name="gate-down")
            try:
                await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in (up, down):
                    pipe.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self.tasks.discard(task)
            for w in (writer, up_w):
                if w is not None:
                    w.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await w.wait_closed()

    async def _client_to_broker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                packet = await read_packet(reader)
                if packet[0] >> 4 == SUBSCRIBE and not self._open.is_set():
                    self.held.set()
                    await self._open.wait()
                writer.write(packet)
                await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(16 * 1024):
                writer.write(data)
                await writer.drain()
