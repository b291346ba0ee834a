"""PN532 HSU (UART) frame codec: bytes in, frames out; pure, never raises, counts drops.

Interface:
    dec = Pn532Decoder(max_len=512)
    frames: list[Frame] = dec.feed(chunk)      # any chunking: ACK+response in one read or split
    dec.reset()                                # forget a partial frame (after a timeout)
    dec.stats() -> {"frames", "garbage_bytes", "drop_bad_lcs", "drop_bad_dcs", ...}
    encode_frame(tfi, data) / encode_command(cmd, params) / encode_response(cmd, payload)
    ACK, NACK, ERROR_FRAME, WAKEUP
    response_payload(frame, cmd) -> bytes | None      # D5 (cmd+1) ... else None
    parse_passive_target(payload) -> Target | None      # InListPassiveTarget 106 kbps type A
    parse_firmware(payload) -> Firmware | None

Frame layout: [00..] 00 FF LEN LCS TFI data DCS [00]; LEN+LCS = 0 and TFI+data+DCS = 0
(mod 256). Extended: 00 FF FF FF LENm LENl LCS TFI data DCS 00. ACK = 00 FF 00 FF, NACK =
00 FF FF 00, application error = 00 FF 01 FF 7F 81. Any number of 00 preamble bytes is
skipped. A frame is complete at its DCS; the postamble is not waited for (it is just another
00). On a bad LCS/DCS or a TFI other than D4/D5 the decoder drops the frame and resumes the
search right after that start code, so a real frame hidden in noise is still found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TFI_HOST = 0xD4  # host -> PN532
TFI_CHIP = 0xD5  # PN532 -> host
ACK = bytes.fromhex("0000ff00ff00")
NACK = bytes.fromhex("0000ffff0000")
ERROR_FRAME = bytes.fromhex("0000ff01ff7f8100")
# HSU wake-up: 0x55 then enough zero bytes for the oscillator to start (libnfc sends 16).
WAKEUP = bytes.fromhex("5555") + bytes(14)

CMD_GET_FIRMWARE_VERSION = 0x02
CMD_SAM_CONFIGURATION = 0x14
CMD_RF_CONFIGURATION = 0x32
CMD_IN_DESELECT = 0x44
CMD_IN_LIST_PASSIVE_TARGET = 0x4A
CMD_IN_RELEASE = 0x52

DEFAULT_MAX_LEN = 512  # PN532 frames carry at most 264 data bytes; more is noise
UID_LENGTHS = frozenset({4, 7, 10})
DROP_REASONS = ("bad_lcs", "bad_dcs", "bad_tfi", "too_long", "truncated")

FrameKind = Literal["ack", "nack", "error", "info"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: ack, nack, error (application error 0x7F), or info with TFI and data."""

    kind: FrameKind
    tfi: int | None = None
    data: bytes = b""
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """An ISO 14443A target from InListPassiveTarget; uid is upper-case hex."""

    tg: int
    sens_res: bytes
    sel_res: int
    uid: str


@dataclass(frozen=True, slots=True)
class Firmware:
    """GetFirmwareVersion answer (IC 0x32 is a PN532)."""

    ic: int
    ver: int
    rev: int
    support: int

    def __str__(self) -> str:
        name = "PN532" if self.ic == 0x32 else f"PN5{self.ic:02X}?"
        return f"{name} v{self.ver}.{self.rev}"


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def encode_frame(tfi: int, data: bytes) -> bytes:
    """A complete HSU information frame (extended when TFI+data exceed 255 bytes)."""
    body = bytes((tfi & 0xFF,)) + data
    n = len(body)
    if n <= 0xFF:
        head = bytes((0x00, 0x00, 0xFF, n, _checksum(bytes((n,)))))
    else:
        hi, lo = (n >> 8) & 0xFF, n & 0xFF
        head = bytes((0x00, 0x00, 0xFF, 0xFF, 0xFF, hi, lo, _checksum(bytes((hi, lo)))))
    return head + body + bytes((_checksum(body), 0x00))


def encode_command(cmd: int, params: bytes = b"") -> bytes:
    """Host -> PN532 command frame."""
    return encode_frame(TFI_HOST, bytes((cmd,)) + params)


def encode_response(cmd: int, payload: bytes = b"") -> bytes:
    """PN532 -> host response frame to `cmd` (response code cmd+1)."""
    return encode_frame(TFI_CHIP, bytes(((cmd + 1) & 0xFF,)) + payload)


def response_payload(frame: Frame, cmd: int) -> bytes | None:
    """The payload of the chip's answer to `cmd`, or None if `frame` is not that answer."""
    if frame.kind != "info" or frame.tfi != TFI_CHIP or not frame.data:
        return None
    if frame.data[0] != ((cmd + 1) & 0xFF):
        return None
    return frame.data[1:]


def parse_firmware(payload: bytes) -> Firmware | None:
    """GetFirmwareVersion payload (IC, Ver, Rev, Support) or None."""
    if len(payload) != 4:
        return None
    return Firmware(payload[0], payload[1], payload[2], payload[3])


def parse_passive_target(payload: bytes) -> Target | None:
    """First 106 kbps type A target of an InListPassiveTarget answer; None when none/malformed."""
    if len(payload) < 6 or payload[0] < 1:
        return None
    tg, sens_res, sel_res, uid_len = payload[1], payload[2:4], payload[4], payload[5]
    uid = payload[6 : 6 + uid_len]
    if uid_len not in UID_LENGTHS or len(uid) != uid_len:
        return None
    return Target(tg, bytes(sens_res), sel_res, uid.hex().upper())


class Pn532Decoder:
    """Incremental PN532 frame decoder with resync; feed() never raises."""

    def __init__(self, *, max_len: int = DEFAULT_MAX_LEN) -> None:
        self._buf = bytearray()
        self._max_len = max_len
        self._frames = 0
        self._garbage = 0
        self._drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume bytes; return every frame they completed."""
        self._buf += data
        out: list[Frame] = []
        while True:
            step = self._step()
            if step is None:
                return out
            if isinstance(step, Frame):
                self._frames += 1
                out.append(step)

    def reset(self) -> None:
        """Forget buffered bytes; a partial frame among them counts as truncated."""
        if self._buf.find(b"\x00\xff") >= 0:
            self._drops["truncated"] += 1
        self._buf.clear()

    def stats(self) -> dict[str, int]:
        """Counters: frames accepted, garbage bytes skipped, drops by reason."""
        result = {"frames": self._frames, "garbage_bytes": self._garbage}
        for reason, count in self._drops.items():
            result[f"drop_{reason}"] = count
        return result

    def _skip(self, n: int) -> None:
        # Zero bytes are preamble/postamble, anything else is garbage worth counting.
        self._garbage += sum(1 for b in self._buf[:n] if b)
        del self._buf[:n]

    def _take(self, n: int) -> None:
        del self._buf[:n]

    def _reject(self, reason: str) -> bool:
        # Resume the search right after this frame's start code.
        self._drops[reason] += 1
        self._skip(2)
        return True

    def _length(self, extended: bool) -> tuple[int, int] | bool | None:
        """The frame's (data length, header length) after checking them; True when the frame
        was rejected (progress), None when more bytes are needed."""
        buf = self._buf
        if extended:
            if len(buf) < 7:
                return None
            hi, lo, lcs = buf[4], buf[5], buf[6]
            if (hi + lo + lcs) & 0xFF:
                return self._reject("bad_lcs")
            length, head = (hi << 8) | lo, 7
        else:
            length, lcs = buf[2], buf[3]
            if (length + lcs) & 0xFF:
                return self._reject("bad_lcs")
            head = 4
        if length == 0:
            return self._reject("bad_lcs")
        if length > self._max_len:
            return self._reject("too_long")
        return length, head

    def _step(self) -> Frame | bool | None:
        """One decoding step: a Frame, True (progress, no frame) or None (need more bytes)."""
        buf = self._buf
        start = buf.find(b"\x00\xff")
        if start < 0:
            # Keep a trailing 00 that may be the first half of a start code.
            keep = 1 if buf.endswith(b"\x00") else 0
            self._skip(len(buf) - keep)
            return None
        if start:
            self._skip(start)
        if len(buf) < 4:
            return None
        length, lcs = buf[2], buf[3]
        if length == 0x00 and lcs == 0xFF:
            self._take(4)
            return Frame("ack")
        if length == 0xFF and lcs == 0x00:
            self._take(4)
            return Frame("nack")
        extended = length == 0xFF and lcs == 0xFF
        framing = self._length(extended)
        if framing is None or isinstance(framing, bool):
            return framing
        length, head = framing
        if len(buf) < head + length + 1:
            return None
        body = bytes(buf[head : head + length])
        if (sum(body) + buf[head + length]) & 0xFF:
            return self._reject("bad_dcs")
        tfi = body[0]
        if length == 1 and tfi == 0x7F:
            self._take(head + length + 1)
            return Frame("error", 0x7F)
        if tfi not in (TFI_HOST, TFI_CHIP):
            return self._reject("bad_tfi")
        self._take(head + length + 1)
        return Frame("info", tfi, body[1:], extended)
