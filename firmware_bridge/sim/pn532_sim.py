"""pty-backed PN532 (HSU) that answers like the chip, built on the real codec in pn532.py.

Interface:
    async with Pn532Simulator(chunk_size=None, ack_with_response=False) as sim:
        Pn532Reader(sim.port, 115200)      # sim.port is a symlink to the current pty slave
        sim.present("04A1B2C3D4E5F6")      # a tag (4, 7 or 10 bytes) is held on the reader
        sim.remove()                       # ... and taken away
        sim.silent = True                  # stop answering anything (timeouts)
        sim.chunk_size = 3                 # split every answer over writes of 3 bytes
        sim.ack_with_response = True       # ACK and response in one write
        sim.unplug(); sim.replug()         # the reader disappears / comes back (asleep again)
        sim.commands                       # command codes received, in order
        await sim.wait_commands(code, n)   # until `code` was received n times

Behaviour: after power-up (and replug) the chip sleeps until the host sends the HSU wake-up
(0x55); commands before that go unanswered, as on the real chip. Each command frame (TFI D4)
is answered with an ACK, then the response frame: GetFirmwareVersion (IC 32, v1.6, support 7),
SAMConfiguration, RFConfiguration, InListPassiveTarget (NbTg 0 or 1 with the scripted tag's
SENS_RES/SEL_RES/UID), InRelease/InDeselect; anything else gets the application error frame.
Frames are decoded and encoded with firmware_bridge.pn532, so the simulator and the driver
share one codec the way zigpy-znp builds its fake devices from its real frame code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from firmware_bridge import pn532
from firmware_bridge.aio import Sleep, cancel_task
from firmware_bridge.sim.pty_port import PtyPort

log = logging.getLogger(__name__)

FIRMWARE = bytes((0x32, 0x01, 0x06, 0x07))
# SENS_RES (ATQA) and SEL_RES (SAK) by UID size: MIFARE Classic 1K, Ultralight/NTAG, a
# triple-size ISO 14443-4 card.
_CARD_BYTES = {4: (b"\x00\x04", 0x08), 7: (b"\x00\x44", 0x00), 10: (b"\x00\x84", 0x20)}
_KNOWN = frozenset(
    {
        pn532.CMD_GET_FIRMWARE_VERSION,
        pn532.CMD_SAM_CONFIGURATION,
        pn532.CMD_RF_CONFIGURATION,
        pn532.CMD_IN_LIST_PASSIVE_TARGET,
        pn532.CMD_IN_RELEASE,
        pn532.CMD_IN_DESELECT,
    }
)


class Pn532Simulator:
    """A PN532 behind a pty; its reader callback and writer task live in this context."""

    def __init__(
        self,
        *,
        firmware: bytes = FIRMWARE,
        chunk_size: int | None = None,
        chunk_delay_s: float = 0.002,
        ack_with_response: bool = False,
        response_delay_s: float = 0.0,
        require_wakeup: bool = True,
        link_path: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.firmware = firmware
        self.chunk_size = chunk_size
        self.chunk_delay_s = chunk_delay_s
        self.ack_with_response = ack_with_response
        self.response_delay_s = response_delay_s
        self.require_wakeup = require_wakeup
        self.silent = False
        self.commands: list[int] = []
        self._sleep = sleep
        self._pty = PtyPort(link_path, name="PN532")
        self._decoder = pn532.Pn532Decoder()
        self._uid: bytes | None = None
        self._awake = not require_wakeup
        self._out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
        self._task: asyncio.Task[None] | None = None
        self._seen = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def port(self) -> str:
        """The stable device path (symlink) to open."""
        return self._pty.path

    @property
    def awake(self) -> bool:
        """True once the host has sent the HSU wake-up since the last power-up."""
        return self._awake

    def present(self, uid_hex: str) -> None:
        """Hold a tag with this UID (4, 7 or 10 bytes of hex) on the reader."""
        uid = bytes.fromhex(uid_hex)
        if len(uid) not in pn532.UID_LENGTHS:
            raise ValueError(f"UID must be 4, 7 or 10 bytes, got {len(uid)}")
        self._uid = uid

    def remove(self) -> None:
        """Take the tag away."""
        self._uid = None

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._plug()
        self._task = asyncio.create_task(self._writer(), name="pn532-sim-writer")
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
            self._unplug()
            self._pty.close()

    def unplug(self) -> None:
        """The reader vanishes from its path."""
        self._unplug()

    def replug(self) -> None:
        """The reader comes back, powered up and asleep."""
        self._plug()

    async def wait_commands(self, code: int, n: int = 1) -> None:
        """Return once command `code` has been received `n` times."""
        while self.commands.count(code) < n:
            self._seen.clear()
            await self._seen.wait()

    def _plug(self) -> None:
        self._pty.plug()
        self._awake = not self.require_wakeup
        self._decoder.reset()
        assert self._loop is not None and self._pty.master_fd is not None
        self._loop.add_reader(self._pty.master_fd, self._on_host_bytes)

    def _unplug(self) -> None:
        if self._loop is not None and self._pty.master_fd is not None:
            self._loop.remove_reader(self._pty.master_fd)
        self._pty.unplug()
        while not self._out.empty():
            self._out.get_nowait()

    def _on_host_bytes(self) -> None:
        data = self._pty.read()
        if not data:
            return
        if 0x55 in data:
            self._awake = True
        for frame in self._decoder.feed(data):
            if frame.kind != "info" or frame.tfi != pn532.TFI_HOST or not frame.data:
                continue  # a host ACK (abort) or noise: the chip has nothing to say
            cmd = frame.data[0]
            self.commands.append(cmd)
            self._seen.set()
            if self.silent or not self._awake:
                continue
            if cmd in _KNOWN:
                answer = pn532.encode_response(cmd, self._answer(cmd, frame.data[1:]))
            else:
                answer = pn532.ERROR_FRAME
            if self._out.full():
                log.warning("simulator output queue full; answer dropped")
                continue
            self._out.put_nowait(pn532.ACK + answer if self.ack_with_response else pn532.ACK)
            if not self.ack_with_response:
                self._out.put_nowait(answer)

    def _answer(self, cmd: int, params: bytes) -> bytes:
        if cmd == pn532.CMD_GET_FIRMWARE_VERSION:
            return self.firmware
        if cmd == pn532.CMD_IN_LIST_PASSIVE_TARGET:
            uid = self._uid
            if uid is None or params[:2] not in (b"\x01\x00", b"\x02\x00"):
                return b"\x00"
            sens_res, sel_res = _CARD_BYTES[len(uid)]
            return b"\x01\x01" + sens_res + bytes((sel_res, len(uid))) + uid
        if cmd in (pn532.CMD_IN_RELEASE, pn532.CMD_IN_DESELECT):
            return b"\x00"
        return b""

    async def _writer(self) -> None:
        while True:
            data = await self._out.get()
            if self.response_delay_s:
                await self._sleep(self.response_delay_s)
            size = self.chunk_size or len(data)
            for i in range(0, len(data), size):
                if i:
                    # Let the host's reader run between pieces, so each arrives as its own read.
                    await self._sleep(self.chunk_delay_s)
                self._pty.write(data[i : i + size])


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # leave through __aexit__: pty and temp dir go
    async with Pn532Simulator(link_path=args.link) as sim:
        print(f"PN532 simulator on {sim.port} (Ctrl-C to stop)", flush=True)
        while not stop.is_set():
            if args.tag:
                sim.present(args.tag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.hold)
            sim.remove()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.every)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m firmware_bridge.sim.pn532 --tag 04A1B2C3 --every 5`."""
    parser = argparse.ArgumentParser(prog="python -m firmware_bridge.sim.pn532")
    parser.add_argument("--tag", default=None, help="UID hex presented periodically")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the tag stays")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between taps")
    parser.add_argument("--link", default=None, help="symlink path to create (default: temp)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
