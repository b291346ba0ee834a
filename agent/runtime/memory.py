"""An idle device's memory (issue 22): modules imported on first use, freed heap given back.

Start-up (imports, the config's validation, opening the outbox) frees a few hundred KB of
glibc heap in small holes that malloc keeps for itself. `malloc_trim(0)` returns the free pages
to the kernel: about 0.5 MB of an idle patrol device's RSS (docs/hardware.md). Only glibc has
it; elsewhere (musl, macOS) nothing is done.

Before that, `edge-agent run` calls `defer_imports`: modules that libraries import for features
a device never uses get a stand-in in `sys.modules`, replaced by the real module on first use.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import logging
import sys
import types
from threading import RLock
from typing import Any

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


# Modules that libraries import when they are imported, for features a device does not use.
# paho-mqtt imports urllib.request (and with it http.client and the email package, ~2 MB) to
# read proxy settings, which it does only when PySocks is installed; the agent has no proxy
# setting and does not depend on PySocks.
UNUSED_AT_START = ("urllib.request",)


class _Deferred(types.ModuleType):
    """Stands in `sys.modules` for a module until something reads one of its attributes.

    The first read imports the real module (which then replaces this one in `sys.modules` and
    in its parent package) and copies its namespace here, for anyone who kept this object.
    """

    def __getattr__(self, attr: str) -> Any:  # called only for what __dict__ lacks
        with self.__dict__["_deferred_lock"]:
            name = self.__name__
            if sys.modules.get(name) is self:
                del sys.modules[name]
                try:
                    real = importlib.import_module(name)
                except BaseException:
                    sys.modules[name] = self
                    raise
                self.__dict__.update(real.__dict__)
                log.debug("deferred module %s imported", name)
        return getattr(sys.modules[name], attr)


def defer_imports(names: tuple[str, ...] = UNUSED_AT_START) -> list[str]:
    """Let each of `names` (not imported yet) be imported on first use; the ones deferred.

    Call before the libraries that import them. `import name` then binds the stand-in; reading
    any attribute of it imports the real module, so nothing behaves differently.
    """
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        stub = _Deferred(name)
        stub.__dict__.update(
            __spec__=spec, __file__=spec.origin, __loader__=spec.loader, _deferred_lock=RLock()
        )
        stub.__package__ = spec.parent
        sys.modules[name] = stub
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, stub)
        deferred.append(name)
    return deferred
