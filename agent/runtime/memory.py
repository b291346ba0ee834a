"""Giving the memory freed during start-up back to the system (issue 22: an idle device's RSS).

Start-up (imports, the config's validation, opening the outbox) frees a few hundred KB of
glibc heap in small holes that malloc keeps for itself. `malloc_trim(0)` returns the free pages
to the kernel: about 0.5 MB of an idle patrol device's RSS (docs/hardware.md). Only glibc has
it; elsewhere (musl, macOS) nothing is done.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)


def trim_heap() -> bool:
    """Return glibc's free heap pages to the kernel; False where there is no malloc_trim."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    released = bool(trim(0))
    log.debug("malloc_trim: %s", "memory released" if released else "nothing to release")
    return True
