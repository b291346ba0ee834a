"""Small asyncio helpers for tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(cond: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Re-check `cond` every 20 ms until it holds; fail after `timeout` (a bound, not an assert)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"condition not reached: {what or cond}")
        await asyncio.sleep(0.02)
