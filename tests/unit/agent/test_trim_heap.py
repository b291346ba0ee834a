"""trim_heap: glibc's free heap goes back to the system after start-up; a no-op elsewhere."""

from __future__ import annotations

import ctypes
import os

import pytest

from agent.runtime import memory


def glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not glibc(), reason="malloc_trim is glibc's")
def test_on_glibc_the_free_heap_is_returned() -> None:
    assert memory.trim_heap() is True


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoTrim:  # musl, macOS: the C library has no malloc_trim
        def __init__(self, _name: object) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    monkeypatch.setattr(ctypes, "CDLL", NoTrim)
    assert memory.trim_heap() is False
