"""NMEA 0183 framing codec: bytes in, checksum-verified sentences out; pure, never raises.

Interface:
    dec = NmeaDecoder(max_len=1024, require_checksum=True)
    sentences: list[Sentence] = dec.feed(chunk)   # any chunking; state is kept across calls
    dec.reset()                                   # forget a partial sentence (port reopened)
    dec.stats() -> {"sentences", "garbage_bytes", "unterminated", "drop_<reason>": n, ...}
    encode_sentence("GPGGA", ["123519", ...]) -> b"$GPGGA,123519,...*hh\\r\\n"

Framing rules (why: cheap receivers send boot garbage, NULs, cut and run-together lines):
- A sentence starts at `$` (or `!` for encapsulated sentences) and ends at CR and/or LF.
- A new `$` before the terminator ends the current sentence: it is kept when it already
  carries a valid `*hh` checksum (a run-together sentence), else dropped as `truncated`.
- Any byte outside printable ASCII inside a sentence drops it (`bad_char`); the decoder then
  hunts for the next `$`. Bytes between sentences are counted as `garbage_bytes`.
- Without `*hh` a sentence is dropped (`no_checksum`) unless require_checksum=False: old
  receivers may omit it, but a cut line without one is indistinguishable from a real one.
- Addresses: 5 upper-case alphanumerics (talker + type: GP, GN, GL, GA, GB, BD, GQ, IN, ...)
  or proprietary `P` + maker code (PUBX, PGRME, PQGSV...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# NMEA 0183 caps a line at 82 characters, but u-blox PUBX,03 and NMEA 4.11 GSV lines run past
# 500; anything longer than this is noise that never met a terminator.
DEFAULT_MAX_LEN = 1024

DROP_REASONS = (
    "bad_checksum",
    "no_checksum",
    "truncated",
    "bad_char",
    "too_long",
    "malformed",
    "bad_address",
)

_DOLLAR = 0x24
_BANG = 0x21
_CR = 0x0D
_LF = 0x0A
_HEX = frozenset("0123456789ABCDEFabcdef")
_ADDR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@dataclass(frozen=True, slots=True)
class Sentence:
    """One checksum-verified sentence: talker ("GP", "GN", "P" = proprietary), kind, fields."""

    talker: str
    kind: str  # "GGA", "RMC", ...; for proprietary sentences the rest of the address ("UBX")
    fields: tuple[str, ...]
    raw: str  # "$GPGGA,...*hh" without the line terminator

    @property
    def address(self) -> str:
        """The address field as sent ("GPGGA", "PUBX")."""
        return self.talker + self.kind


def checksum(body: str) -> int:
    """XOR of the characters between `$` and `*`."""
    value = 0
    for ch in body.encode("ascii", "replace"):
        value ^= ch
    return value


def encode_sentence(address: str, fields: Sequence[str], *, start: str = "$") -> bytes:
    """Build one CRLF-terminated sentence with its checksum (for simulators and tests)."""
    body = ",".join([address, *fields])
    return f"{start}{body}*{checksum(body):02X}\r\n".encode("ascii")


def _split_address(address: str) -> tuple[str, str] | None:
    if not address or not set(address) <= _ADDR_CHARS:
        return None
    if address[0] == "P":
        # Proprietary: "P" + 3-letter maker + optional type (PUBX, PGRME, PQGSV, PLCS...).
        return ("P", address[1:]) if 4 <= len(address) <= 10 else None
    if len(address) == 5:
        return address[:2], address[2:]
    return None


class NmeaDecoder:
    """Incremental NMEA framer; feed() never raises and counts every dropped sentence by reason."""

    def __init__(self, *, max_len: int = DEFAULT_MAX_LEN, require_checksum: bool = True) -> None:
        self._max_len = max(16, max_len)
        self._require_checksum = require_checksum
        self._buf: bytearray | None = None  # None while hunting for a start character
        self._sentences = 0
        self._garbage = 0
        self._unterminated = 0
        self._drops: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)

    def feed(self, data: bytes) -> list[Sentence]:
        """Consume a chunk of bytes and return the sentences it completed."""
        out: list[Sentence] = []
        buf = self._buf
        for b in data:
            if b in (_DOLLAR, _BANG):
                if buf is not None:
                    self._finish(buf, out, run_together=True)
                buf = bytearray((b,))
            elif b in (_CR, _LF):
                if buf is not None:
                    self._finish(buf, out, run_together=False)
                    buf = None
            elif buf is None:
                self._garbage += 1
            elif b < 0x20 or b > 0x7E:
                self._drop("bad_char")
                self._garbage += 1
                buf = None
            elif len(buf) >= self._max_len:
                self._drop("too_long")
                buf = None
            else:
                buf.append(b)
        self._buf = buf
        return out

    def reset(self) -> None:
        """Forget a partial sentence (counted as truncated), e.g. after the port was reopened."""
        if self._buf is not None and len(self._buf) > 1:
            self._drop("truncated")
        self._buf = None

    def stats(self) -> dict[str, int]:
        """Counters: sentences accepted, garbage bytes, run-together accepted, drops by reason."""
        result = {
            "sentences": self._sentences,
            "garbage_bytes": self._garbage,
            "unterminated": self._unterminated,
        }
        for reason, count in self._drops.items():
            result[f"drop_{reason}"] = count
        return result

    @property
    def drops(self) -> dict[str, int]:
        """Dropped sentences by reason (a copy)."""
        return dict(self._drops)

    def _drop(self, reason: str) -> None:
        self._drops[reason] += 1

    def _finish(self, buf: bytearray, out: list[Sentence], *, run_together: bool) -> None:
        # Only printable ASCII was appended, so this decode cannot fail.
        text = buf.decode("ascii")
        if len(text) <= 1:
            if run_together:
                self._drop("truncated")
            return
        star = text.rfind("*")
        if star < 0:
            if run_together:
                self._drop("truncated")
                return
            if self._require_checksum:
                self._drop("no_checksum")
                return
            body = text[1:]
        else:
            body = text[1:star]
            digits = text[star + 1 :]
            if len(digits) != 2 or not set(digits) <= _HEX:
                # "*4" then a new "$" is a cut line; "*1E0,*4E" is two lines spliced together.
                self._drop("truncated" if run_together else "malformed")
                return
            if int(digits, 16) != checksum(body):
                self._drop("bad_checksum")
                return
        if "*" in body:
            self._drop("malformed")
            return
        parts = body.split(",")
        split = _split_address(parts[0])
        if split is None:
            self._drop("bad_address")
            return
        if run_together:
            self._unterminated += 1
        self._sentences += 1
        out.append(Sentence(split[0], split[1], tuple(parts[1:]), text))
