"""Shared helpers for the firmware_bridge tests (test_fb_*.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from firmware_bridge.fix import EpochMerger
from firmware_bridge.nmea import NmeaDecoder, encode_sentence
from firmware_bridge.types import Fix

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NMEA_DIR = DATA_DIR / "nmea"
PN532_DIR = DATA_DIR / "pn532"


def require(path: Path) -> Path:
    """The path, or skip the test when ../shared/data is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (expected ../shared/data)")
    return path


def captures() -> list[Path]:
    """Every NMEA capture in ../shared/data/nmea (empty when the folder is absent)."""
    if not NMEA_DIR.is_dir():
        return []
    return sorted(p for p in NMEA_DIR.rglob("*") if p.is_file() and p.suffix in (".log", ".nmea"))


def decode_fixes(data: bytes, chunk: int | None = None) -> tuple[list[Fix], NmeaDecoder]:
    """Run bytes through the codec and the merger (optionally in chunks); all fixes incl. flush."""
    dec, merger = NmeaDecoder(), EpochMerger()
    fixes: list[Fix] = []
    step = chunk or max(1, len(data))
    for i in range(0, len(data), step):
        for sentence in dec.feed(data[i : i + step]):
            fixes.extend(merger.push(sentence, i))
    last = merger.flush()
    if last is not None:
        fixes.append(last)
    return fixes, dec


def nmea(address: str, *fields: str) -> bytes:
    """One CRLF-terminated sentence with a correct checksum."""
    return encode_sentence(address, list(fields))


def scaled_sleep(factor: float = 0.01) -> Callable[[float], Awaitable[None]]:
    """An injectable sleep that waits `factor` of the asked time (backoffs in tests)."""

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds * factor)

    return sleep


async def eventually(predicate: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Wait until predicate() holds; the limit only stops a hung test, it asserts no timing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.005)
