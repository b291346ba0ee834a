"""PN532 NFC reader over UART (HSU): wake, configure, poll, and emit one TagScan per tap.

Interface:
    async with Pn532Reader("/dev/ttyUSB0", 115200, poll_interval_s=0.2, on_scan=None) as reader:
        async for scan in reader.scans():       # firmware_bridge.types.TagScan
            ...
        reader.status() -> {"present": bool, "firmware": "PN532 v1.6" | None, "errors": n,
                            "timeouts": n, "scans": n, "connected": bool, "reopenings": n,
                            "last_error": str | None, "tag_present": bool}

Never raises for a missing, silent or misbehaving reader: every failure is logged, counted in
status(), and retried (the chip is re-woken and re-configured) after a jittered, capped
backoff. Sequence: HSU wake-up (0x55 ...), SAMConfiguration (normal mode), GetFirmwareVersion
(IC must be 0x32), RFConfiguration MaxRetries so that InListPassiveTarget returns "no target"
instead of waiting forever, then InListPassiveTarget(1 target, 106 kbps type A) every
`poll_interval_s`. Each command waits for the ACK and then the response, which may arrive in
one read or split over several (the decoder is stream-based); on a timeout the host sends an
ACK, which the PN532 takes as "abort the current command".

Taps: a UID is reported when it appears; while it stays on the reader (seen again, or missed
for fewer than `absent_polls` consecutive polls) it is not reported again. `on_scan` is called
synchronously on the event loop the moment a tap is recognised, before the scan is queued, so
the user-feedback path (LED/buzzer) does not wait for a consumer or a poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from firmware_bridge import pn532
from firmware_bridge.aio import Backoff, Sleep, Spawn, boottime_ms, cancel_task, spawn_task
from firmware_bridge.errors import CodecError, DeviceError
from firmware_bridge.serial_link import SerialLink
from firmware_bridge.types import TagScan

log = logging.getLogger(__name__)

# SAMConfiguration: normal mode, virtual-card timeout 0x14 (1 s), use the IRQ pin.
_SAM_NORMAL = bytes((0x01, 0x14, 0x01))
# RFConfiguration item 5 (MaxRetries): ATR 0xFF, PSL 1, passive activation 1 retry.
_RF_MAX_RETRIES = bytes((0x05, 0xFF, 0x01, 0x01))
_LIST_ONE_106A = bytes((0x01, 0x00))


class Pn532Reader:
    """Owns the serial link to a PN532 and one polling task; TagScans come out of scans()."""

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        *,
        poll_interval_s: float = 0.2,
        ack_timeout_s: float = 0.1,
        response_timeout_s: float = 0.5,
        absent_polls: int = 2,
        fail_limit: int = 3,
        on_scan: Callable[[TagScan], None] | None = None,
        clock_ms: Callable[[], int] | None = None,
        sleep: Sleep = asyncio.sleep,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        spawn: Spawn = spawn_task,
        queue_size: int = 32,
    ) -> None:
        self.port = port
        self._link = SerialLink(
            port, baud, sleep=sleep, backoff=Backoff(0.5, 10.0), spawn=spawn, name="pn532"
        )
        self._spawn = spawn
        self._poll_s = poll_interval_s
        self._ack_s = ack_timeout_s
        self._rsp_s = response_timeout_s
        self._absent_polls = max(1, absent_polls)
        self._fail_limit = max(1, fail_limit)
        self._on_scan = on_scan
        self._clock_ms = clock_ms or boottime_ms
        self._sleep = sleep
        self._backoff = backoff or Backoff(0.2, 10.0)
        self._rng = rng or random.Random()
        self._decoder = pn532.Pn532Decoder()
        self._pending: deque[pn532.Frame] = deque()
        self._queue: asyncio.Queue[TagScan | None] = asyncio.Queue(maxsize=max(1, queue_size))
        self._task: asyncio.Task[None] | None = None
        self._init_generation = 0  # link generation the chip was last configured on
        self._needs_init = True
        self._failures = 0
        self._current_uid: str | None = None
        self._misses = 0
        self._st: dict[str, Any] = {
            "present": False,
            "firmware": None,
            "errors": 0,
            "timeouts": 0,
            "scans": 0,
            "scans_dropped": 0,
            "unexpected_frames": 0,
            "last_error": None,
        }

    async def __aenter__(self) -> Self:
        await self._link.__aenter__()
        self._task = self._spawn(f"pn532-poll:{self.port}", self._run)
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
            self._offer(None)

    async def scans(self) -> AsyncIterator[TagScan]:
        """One TagScan per tap; ends when the reader is closed."""
        while True:
            scan = await self._queue.get()
            if scan is None:
                return
            yield scan

    def status(self) -> dict[str, Any]:
        """Reader health for the status message."""
        link = self._link.counters()
        return {
            **self._st,
            "present": self._st["present"]
            and link["connected"]
            and self._init_generation == self._link.generation,
            "connected": link["connected"],
            "reopenings": link["reopenings"],
            "tag_present": self._current_uid is not None,
            "link_error": link["last_error"],
        }

    async def _run(self) -> None:
        while True:
            try:
                if not self._link.connected:
                    self._gone()
                    await self._link.wait_connected()
                generation = self._link.generation
                if generation != self._init_generation:
                    # A new connection (replug): a tag on the reader now is a new tap.
                    self._current_uid = None
                    self._needs_init = True
                if self._needs_init:
                    await self._init_chip()
                    self._init_generation = generation
                    self._needs_init = False
                await self._poll_once()
                self._failures = 0
                await self._sleep(self._poll_s)
            except (DeviceError, CodecError) as exc:
                self._failed(exc)
                await self._sleep(self._backoff.delay(self._failures - 1, self._rng))

    def _gone(self) -> None:
        # Unplugged: a tag still on the reader after the replug counts as a new tap.
        if self._st["present"]:
            log.warning("PN532 on %s disconnected", self.port)
        self._st["present"] = False
        self._current_uid = None
        self._needs_init = True

    def _failed(self, exc: Exception) -> None:
        self._st["errors"] += 1
        self._st["last_error"] = str(exc)
        self._failures += 1
        self._needs_init = True  # wake and configure again before the next poll
        if self._failures >= self._fail_limit and self._st["present"]:
            log.warning("PN532 on %s not answering: %s", self.port, exc)
            self._st["present"] = False
            self._current_uid = None  # after an outage a tag on the reader is a new tap
        elif self._failures == 1:
            log.info("PN532 on %s: %s (retrying)", self.port, exc)
        else:
            log.debug("PN532 on %s: %s", self.port, exc)

    async def _init_chip(self) -> None:
        self._link.drain()
        await self._link.write(pn532.WAKEUP)
        await self._command(pn532.CMD_SAM_CONFIGURATION, _SAM_NORMAL)
        fw = pn532.parse_firmware(await self._command(pn532.CMD_GET_FIRMWARE_VERSION))
        if fw is None or fw.ic != 0x32:
            raise CodecError(f"not a PN532 (firmware answer {fw})")
        await self._command(pn532.CMD_RF_CONFIGURATION, _RF_MAX_RETRIES)
        if not self._st["present"]:
            log.info("PN532 ready on %s: %s", self.port, fw)
        self._st["firmware"] = str(fw)
        self._st["present"] = True

    async def _poll_once(self) -> None:
        payload = await self._command(pn532.CMD_IN_LIST_PASSIVE_TARGET, _LIST_ONE_106A)
        target = pn532.parse_passive_target(payload)
        if target is None:
            self._misses += 1
            if self._misses >= self._absent_polls:
                self._current_uid = None
            return
        self._misses = 0
        if target.uid == self._current_uid:
            return  # the same tag still held on the reader
        self._current_uid = target.uid
        self._tap(TagScan(uid=target.uid, mono_ms=self._clock_ms()))

    def _tap(self, scan: TagScan) -> None:
        self._st["scans"] += 1
        if self._on_scan is not None:
            try:
                self._on_scan(scan)
            except Exception:
                # A broken feedback hook must not stop the reader; the scan still goes out.
                log.exception("on_scan hook failed")
        self._offer(scan)

    def _offer(self, item: TagScan | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._st["scans_dropped"] += 1
        self._queue.put_nowait(item)

    async def _command(self, cmd: int, params: bytes = b"") -> bytes:
        """Send a command, wait for its ACK and response; the response payload."""
        self._pending.clear()
        self._decoder.reset()
        self._link.drain()
        await self._link.write(pn532.encode_command(cmd, params))
        acked = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ack_s
        while True:
            try:
                frame = await self._next_frame(deadline)
            except TimeoutError:
                self._st["timeouts"] += 1
                await self._abort()
                what = "response" if acked else "ACK"
                raise DeviceError(f"timeout waiting for {what} to command 0x{cmd:02X}") from None
            if frame.kind == "ack" and not acked:
                acked = True
                deadline = loop.time() + self._rsp_s
                continue
            if frame.kind == "nack":
                raise DeviceError(f"NACK to command 0x{cmd:02X}")
            if frame.kind == "error":
                raise DeviceError(f"error frame in answer to command 0x{cmd:02X}")
            payload = pn532.response_payload(frame, cmd)
            if payload is not None:
                return payload  # a response also implies the ACK we may have missed
            self._st["unexpected_frames"] += 1

    async def _next_frame(self, deadline: float) -> pn532.Frame:
        while not self._pending:
            async with asyncio.timeout_at(deadline):
                chunk = await self._link.read()
            self._pending.extend(self._decoder.feed(chunk))
        return self._pending.popleft()

    async def _abort(self) -> None:
        if self._link.connected:
            try:
                await self._link.write(pn532.ACK)
            except DeviceError as exc:
                log.debug("abort ACK not sent: %s", exc)
