"""GpsSource: serial link + NMEA codec + epoch merger, yielding one Fix per receiver epoch.

Interface:
    async with GpsSource("/dev/serial0", 9600, clock_ms=None) as gps:
        async for fix in gps.fixes():      # firmware_bridge.types.Fix, valid or not, one per epoch
            ...
        gps.counters() -> {"connected": bool, "bytes": n, "sentences": n, "bad_checksum": n,
                           "dropped": {reason: n}, "garbage_bytes": n, "reopenings": n,
                           "open_failures": n, "epochs": n, "valid_fixes": n,
                           "invalid_fixes": {reason: n},
                           "fixes_dropped": n, "last_fix_valid": bool, "last_error": str | None}
        gps.latest -> Fix | None           # the newest fix, for status

Fix.mono_ms comes from `clock_ms` (default CLOCK_BOOTTIME in ms, the clock the contract's
mono_ms uses) read when the epoch's last sentence arrived. When the receiver goes quiet for
`idle_flush_s` the open epoch is closed, so a receiver's last epoch before a pause is not held
back. fixes() is for one consumer; if it falls behind, the oldest queued fixes are dropped
(the newest position matters most) and counted. The source never raises for a missing or
unplugged receiver: it reopens with backoff (see serial_link) and reports connected=False.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from firmware_bridge.aio import Backoff, Sleep, Spawn, boottime_ms, cancel_task, spawn_task
from firmware_bridge.fix import EpochMerger
from firmware_bridge.nmea import NmeaDecoder
from firmware_bridge.serial_link import SerialLink
from firmware_bridge.types import Fix

log = logging.getLogger(__name__)


class GpsSource:
    """Owns a SerialLink and a pump task; produces Fix objects through fixes()."""

    def __init__(
        self,
        port: str,
        baud: int,
        *,
        clock_ms: Callable[[], int] | None = None,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        spawn: Spawn = spawn_task,
        idle_flush_s: float = 0.3,
        queue_size: int = 16,
        hdop_uere_m: float = 5.0,
        require_checksum: bool = True,
    ) -> None:
        self.port = port
        self._clock_ms = clock_ms or boottime_ms
        self._link = SerialLink(port, baud, sleep=sleep, backoff=backoff, spawn=spawn, name="gps")
        self._spawn = spawn
        self._decoder = NmeaDecoder(require_checksum=require_checksum)
        self._merger = EpochMerger(hdop_uere_m=hdop_uere_m)
        self._idle_flush_s = idle_flush_s
        self._queue: asyncio.Queue[Fix | None] = asyncio.Queue(maxsize=max(1, queue_size))
        self._task: asyncio.Task[None] | None = None
        self._fixes_dropped = 0
        self.latest: Fix | None = None

    async def __aenter__(self) -> Self:
        await self._link.__aenter__()
        self._task = self._spawn(f"gps-pump:{self.port}", self._pump)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        try:
            await cancel_task(task)
        finally:
            await self._link.__aexit__(exc_type, exc, tb)
            self._offer(None)  # ends a consumer's `async for`

    async def fixes(self) -> AsyncIterator[Fix]:
        """Every epoch's Fix as it completes; ends when the source is closed."""
        while True:
            fix = await self._queue.get()
            if fix is None:
                return
            yield fix

    def counters(self) -> dict[str, Any]:
        """Health figures for the status message."""
        link = self._link.counters()
        dec = self._decoder.stats()
        merged = self._merger.stats()
        dropped = {k[5:]: v for k, v in dec.items() if k.startswith("drop_") and v}
        dropped.update({k: v for k, v in merged.items() if k in ("late", "unparseable") and v})
        return {
            "connected": link["connected"],
            "bytes": link["bytes_in"],
            "sentences": dec["sentences"],
            "bad_checksum": dec["drop_bad_checksum"],
            "dropped": dropped,
            "garbage_bytes": dec["garbage_bytes"],
            "reopenings": link["reopenings"],
            "open_failures": link["open_failures"],
            "epochs": merged["epochs"],
            "valid_fixes": merged["valid"],
            "invalid_fixes": {k[8:]: v for k, v in merged.items() if k.startswith("invalid_")},
            "fixes_dropped": self._fixes_dropped,
            "last_fix_valid": bool(self.latest and self.latest.valid),
            "last_error": link["last_error"],
        }

    async def _pump(self) -> None:
        generation = 0
        while True:
            try:
                async with asyncio.timeout(self._idle_flush_s):
                    chunk = await self._link.read()
            except TimeoutError:
                # The receiver finished its burst (or went away): close the open epoch now.
                pending = self._merger.flush()
                if pending is not None:
                    self._emit(pending, None)
                continue
            if self._link.generation != generation:
                # Bytes left from the previous device are meaningless next to the new one's.
                generation = self._link.generation
                self._decoder.reset()
            now = self._clock_ms()
            for sentence in self._decoder.feed(chunk):
                for fix in self._merger.push(sentence, now):
                    self._emit(fix, now)

    def _emit(self, fix: Fix, now: int | None) -> None:
        if fix.mono_ms is None:
            fix = dataclasses.replace(fix, mono_ms=now if now is not None else self._clock_ms())
        self.latest = fix
        self._offer(fix)

    def _offer(self, item: Fix | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._fixes_dropped += 1
        self._queue.put_nowait(item)
