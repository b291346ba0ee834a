"""A TCP server on 127.0.0.1 (a free port) whose connection handlers end with it."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Self


class LoopbackServer(ABC):
    """Async context manager: serves `handle` per connection on `port`; on exit closes the
    listener and cancels every handler that registered itself in `tasks`."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        """The port it listens on (once entered)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @abstractmethod
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: each subclass serves its own protocol."""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self._server.wait_closed()
