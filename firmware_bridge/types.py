"""Facts that firmware_bridge hands to the agent: frozen, I/O-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FixKind = Literal["none", "2d", "3d"]


@dataclass(frozen=True, slots=True)
class Fix:
    """One receiver epoch merged from GGA/RMC (+GSA/GST/VTG); valid only if the receiver says so."""

    valid: bool
    utc_ms: int | None  # fix time, Unix epoch ms (UTC), None when the receiver gave no date/time
    lat: float | None
    lon: float | None
    alt_m: float | None = None
    quality: int | None = None  # GGA quality indicator
    fix: FixKind = "none"
    sats: int | None = None
    hdop: float | None = None
    acc_m: float | None = None  # estimated horizontal error (1 sigma-ish, metres)
    speed_mps: float | None = None
    course_deg: float | None = None
    mono_ms: int | None = None  # CLOCK_BOOTTIME ms when the epoch was completed on this device
    # Why `valid` is False ("no_fix", "rmc_void", "time_backwards", ...); None when valid.
    invalid_reason: str | None = None


@dataclass(frozen=True, slots=True)
class TagScan:
    """One tap of an NFC tag (held tags are one scan); uid is upper-case hex."""

    uid: str
    mono_ms: int


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """A press of a named button ("sos", "checkin", ...)."""

    button: str
    mono_ms: int
