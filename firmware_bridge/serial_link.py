"""Asyncio serial port that survives unplugging: non-blocking reads, reopen with backoff.

Interface:
    async with SerialLink("/dev/serial0", 9600, sleep=asyncio.sleep) as link:
        chunk: bytes = await link.read()       # waits across disconnects; never raises for them
        await link.write(b"...")               # DeviceError when the port is not open
        await link.wait_connected()
        link.connected, link.generation        # generation +1 on every successful open
        link.counters() -> {"connected", "bytes_in", "bytes_out", "opens", "reopenings",
                            "open_failures", "disconnects", "overrun_chunks", "last_error"}

Why loop.add_reader instead of a thread: the fd is already non-blocking (pyserial opens with
O_NONBLOCK), a reader callback costs nothing while idle, and closing/cancelling is immediate,
whereas a thread parked in a blocking read() cannot be cancelled and outlives the task. pyserial
still opens the port, sets baud/raw mode and takes the exclusive lock; bytes move with
os.read/os.write on its fd because pyserial's read() turns "readable but empty" into an
exception string we would have to parse, and its write() with write_timeout=0 spins on EAGAIN.

A device that disappears (USB unplug: read() returns b"" or EIO; pty: EIO) closes the port and
the link retries opening the same *path* with jittered, capped exponential backoff. Use stable
paths (/dev/serial0, /dev/serial/by-id/..., or the simulators' symlink) so the device that comes
back is found again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
from types import TracebackType
from typing import Any, Self

import serial

from firmware_bridge.aio import Backoff, Sleep, Spawn, cancel_task, spawn_task
from firmware_bridge.errors import DeviceError

log = logging.getLogger(__name__)

_RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR})


class SerialLink:
    """One serial port owned by one task: bounded chunk queue in, direct writes out."""

    def __init__(
        self,
        port: str,
        baud: int,
        *,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        spawn: Spawn = spawn_task,
        queue_size: int = 256,
        read_size: int = 4096,
        exclusive: bool = True,
        name: str = "serial",
    ) -> None:
        self.port = port
        self.baud = baud
        self._sleep = sleep
        self._backoff = backoff or Backoff(0.5, 30.0)
        self._rng = rng or random.Random()
        self._spawn = spawn
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max(1, queue_size))
        self._read_size = read_size
        self._exclusive = exclusive
        self._name = name
        self._ser: serial.Serial | None = None
        self._fd: int | None = None
        self._lost: asyncio.Event | None = None
        self._connected_evt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.generation = 0
        self._c: dict[str, Any] = {
            "bytes_in": 0,
            "bytes_out": 0,
            "opens": 0,
            "reopenings": 0,
            "open_failures": 0,
            "disconnects": 0,
            "overrun_chunks": 0,
            "last_error": None,
        }

    async def __aenter__(self) -> Self:
        self._task = self._spawn(f"{self._name}-link:{self.port}", self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        await cancel_task(task)
        self._close()

    @property
    def connected(self) -> bool:
        """True while the port is open."""
        return self._fd is not None

    def counters(self) -> dict[str, Any]:
        """A plain dict for status messages."""
        return {"connected": self.connected, **self._c}

    async def wait_connected(self) -> None:
        """Return once the port is open (immediately when it is)."""
        await self._connected_evt.wait()

    async def read(self) -> bytes:
        """The next chunk received (waits, also across a disconnect and reopen)."""
        return await self._queue.get()

    def drain(self) -> int:
        """Discard chunks already received; returns how many bytes were dropped."""
        dropped = 0
        while not self._queue.empty():
            dropped += len(self._queue.get_nowait())
        return dropped

    async def write(self, data: bytes) -> None:
        """Write all of `data`; DeviceError when the port is closed or the write fails."""
        view = memoryview(data)
        while view:
            fd = self._fd
            if fd is None:
                raise DeviceError(f"{self.port}: not connected")
            try:
                n = os.write(fd, view)
            except OSError as exc:
                if exc.errno in _RETRY_ERRNOS:
                    await self._writable(fd)
                    continue
                self._mark_lost(exc)
                raise DeviceError(f"{self.port}: write failed: {exc}") from exc
            self._c["bytes_out"] += n
            view = view[n:]

    async def _writable(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(fd, ready)
        try:
            async with asyncio.timeout(1.0):  # not wait_for: 3.11's can drop a cancellation
                await fut
        except TimeoutError as exc:
            raise DeviceError(f"{self.port}: write stalled") from exc
        finally:
            loop.remove_writer(fd)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                ser = serial.Serial(
                    self.port, self.baud, timeout=0, write_timeout=0, exclusive=self._exclusive
                )
            except (serial.SerialException, OSError, ValueError) as exc:
                self._c["open_failures"] += 1
                # Log the first failure in a row loudly, the retries quietly.
                level = logging.WARNING if self._c["open_failures"] == 1 else logging.DEBUG
                log.log(level, "cannot open %s: %s (retrying)", self.port, exc)
                self._c["last_error"] = str(exc)
                retry = self._c["open_failures"] - 1
                await self._sleep(self._backoff.delay(retry, self._rng))
                continue
            self._ser, self._fd = ser, ser.fileno()
            self.generation += 1
            self._c["opens"] += 1
            if self.generation > 1:
                self._c["reopenings"] += 1
            self._c["open_failures"] = 0
            log.info("opened %s at %d baud (generation %d)", self.port, self.baud, self.generation)
            lost = self._lost = asyncio.Event()
            loop.add_reader(self._fd, self._on_readable)
            self._connected_evt.set()
            await lost.wait()
            self._close()
            self._c["disconnects"] += 1
            await self._sleep(self._backoff.delay(0, self._rng))

    def _on_readable(self) -> None:
        fd = self._fd
        if fd is None:
            return
        try:
            data = os.read(fd, self._read_size)
        except OSError as exc:
            if exc.errno not in _RETRY_ERRNOS:
                self._mark_lost(exc)
            return
        if not data:
            self._mark_lost(None)  # readable with no data: the device went away
            return
        self._c["bytes_in"] += len(data)
        if self._queue.full():
            # The consumer is behind: keep the newest bytes, the codecs resync over the gap.
            self._queue.get_nowait()
            self._c["overrun_chunks"] += 1
        self._queue.put_nowait(data)

    def _mark_lost(self, exc: OSError | None) -> None:
        if self._fd is None:
            return
        reason = str(exc) if exc is not None else "device disappeared (EOF)"
        log.warning("lost %s: %s", self.port, reason)
        self._c["last_error"] = reason
        self._close()
        if self._lost is not None:
            self._lost.set()

    def _close(self) -> None:
        fd, ser = self._fd, self._ser
        self._fd = self._ser = None
        self._connected_evt.clear()
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
        if ser is not None:
            try:
                ser.close()
            except (serial.SerialException, OSError) as exc:
                log.debug("closing %s: %s", self.port, exc)
